import type { JobLog, StepRecord } from "./job-log.ts";

/** Where a job's timeline and logs go: the Results service (broker jobs) or the pipelines service (classic). */
export interface FeedbackChannel {
  /** Sends the records' states; Results wants every step each time, the timeline only the changed ones. */
  updateRecords(log: JobLog, changed: readonly StepRecord[]): Promise<void>;
  /** Lines for the live console of one record; best effort. */
  sendLive(recordId: string, lines: string[], startLine: number): Promise<void>;
  /** Uploads each record's log and the job's log (once, at the end). */
  uploadLogs(log: JobLog): Promise<void>;
  close(): void;
}
