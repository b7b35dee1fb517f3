export type { LocalCheckoutSource } from "./checkout-step.ts";
export { JobEventStream, type PublishEvent } from "./job-events.ts";
export { LogBatcher, type LogBatcherOptions, type OutputLine } from "./log-batcher.ts";
export { formatDuration, type JobResult, type RunJobOptions, runJob, type StepResult } from "./run-job.ts";
