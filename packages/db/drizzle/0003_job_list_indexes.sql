DROP INDEX "jobs_state_idx";--> statement-breakpoint
DROP INDEX "jobs_label_idx";--> statement-breakpoint
DROP INDEX "jobs_created_at_idx";--> statement-breakpoint
CREATE INDEX "jobs_state_created_at_idx" ON "jobs" USING btree ("state","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "jobs_label_created_at_idx" ON "jobs" USING btree ("label","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "jobs_host_id_created_at_idx" ON "jobs" USING btree ("host_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "jobs_repo_full_name_created_at_idx" ON "jobs" USING btree ("repo_full_name","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "jobs_repo_url_created_at_idx" ON "jobs" USING btree ("repo_url","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "jobs_created_at_idx" ON "jobs" USING btree ("created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);