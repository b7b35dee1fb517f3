CREATE TABLE "debug_sessions" (
	"job_id" uuid PRIMARY KEY NOT NULL,
	"host_id" text NOT NULL,
	"repository" text NOT NULL,
	"label" text NOT NULL,
	"ssh_host" text NOT NULL,
	"ssh_port" integer NOT NULL,
	"ssh_user" text NOT NULL,
	"host_key_fingerprint" text NOT NULL,
	"allowed" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "debug_sessions_host_id_idx" ON "debug_sessions" USING btree ("host_id");