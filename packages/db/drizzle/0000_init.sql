CREATE TABLE "hosts" (
	"id" text PRIMARY KEY NOT NULL,
	"labels" jsonb NOT NULL,
	"max_vms" integer NOT NULL,
	"version" text NOT NULL,
	"backend" text NOT NULL,
	"accelerator" text NOT NULL,
	"draining" boolean DEFAULT false NOT NULL,
	"last_heartbeat_at" timestamp with time zone NOT NULL,
	"started_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "job_steps" (
	"job_id" uuid NOT NULL,
	"attempt" integer NOT NULL,
	"idx" integer NOT NULL,
	"name" text NOT NULL,
	"state" text NOT NULL,
	"conclusion" text,
	"exit_code" integer,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	CONSTRAINT "job_steps_pk" PRIMARY KEY("job_id","attempt","idx"),
	CONSTRAINT "job_steps_state_check" CHECK ("job_steps"."state" in ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
	CONSTRAINT "job_steps_conclusion_check" CHECK ("job_steps"."conclusion" is null or "job_steps"."conclusion" in ('succeeded', 'failed', 'cancelled', 'skipped'))
);
--> statement-breakpoint
CREATE TABLE "jobs" (
	"id" uuid PRIMARY KEY NOT NULL,
	"attempt" integer NOT NULL,
	"state" text NOT NULL,
	"source" text NOT NULL,
	"owner" text NOT NULL,
	"label" text NOT NULL,
	"repo_url" text NOT NULL,
	"repo_full_name" text NOT NULL,
	"commit_sha" text NOT NULL,
	"ref" text NOT NULL,
	"workflow_path" text NOT NULL,
	"job_key" text NOT NULL,
	"job_name" text NOT NULL,
	"host_id" text,
	"reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"queued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "jobs_state_check" CHECK ("jobs"."state" in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	CONSTRAINT "jobs_source_check" CHECK ("jobs"."source" in ('forgejo', 'github', 'manual')),
	CONSTRAINT "jobs_attempt_check" CHECK ("jobs"."attempt" >= 1)
);
--> statement-breakpoint
ALTER TABLE "job_steps" ADD CONSTRAINT "job_steps_job_id_fk" FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "jobs_state_idx" ON "jobs" USING btree ("state");--> statement-breakpoint
CREATE INDEX "jobs_label_idx" ON "jobs" USING btree ("label");--> statement-breakpoint
CREATE INDEX "jobs_created_at_idx" ON "jobs" USING btree ("created_at" DESC NULLS LAST);