export { DbError, type DbErrorCode } from "./db-error.ts";
export { jobDetailsOf } from "./job-details.ts";
export type {
  DebugSessionRecord,
  FinishedJobState,
  HostRecord,
  HostRegistration,
  JobDetails,
  JobFilter,
  JobRecord,
  JobResult,
  JobSourceName,
  JobState,
  JobStore,
  NewJob,
  StepConclusion,
  StepRecord,
  StepResult,
  StepState,
} from "./job-store.ts";
export { MemoryJobStore } from "./memory-job-store.ts";
export { type MigrateOptions, migrate } from "./migrate.ts";
export { createPgJobStore, PgJobStore, type PgJobStoreOptions } from "./pg-job-store.ts";
