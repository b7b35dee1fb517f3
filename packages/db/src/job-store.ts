import type { JOB_SOURCES, JOB_STATES, STEP_CONCLUSIONS, STEP_STATES } from "./schema.ts";

export type JobState = (typeof JOB_STATES)[number];
export type FinishedJobState = Exclude<JobState, "queued" | "running">;
export const FINISHED_STATES: readonly FinishedJobState[] = ["succeeded", "failed", "cancelled"];
export type StepState = (typeof STEP_STATES)[number];
export type StepConclusion = (typeof STEP_CONCLUSIONS)[number];
/** Which kind of runner submitted the job (named apart from the protobuf enum `JobSource`). */
export type JobSourceName = (typeof JOB_SOURCES)[number];

/** What a job is, independent of any attempt. */
export interface JobDetails {
  source: JobSourceName;
  /** The runner instance that follows the job. */
  owner: string;
  /** The `runs-on` label. */
  label: string;
  repoUrl: string;
  repoFullName: string;
  commitSha: string;
  ref: string;
  workflowPath: string;
  /** The key under `jobs:`. */
  jobKey: string;
  jobName: string;
  /** The planned steps of this attempt. */
  steps: { index: number; name: string }[];
}

export interface NewJob extends JobDetails {
  jobId: string;
  attempt: number;
}

export interface StepRecord {
  index: number;
  name: string;
  state: StepState;
  conclusion: StepConclusion | null;
  exitCode: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface JobRecord extends Omit<NewJob, "steps"> {
  state: JobState;
  hostId: string | null;
  reason: string | null;
  /** The finished job's outputs; empty until it finishes. */
  outputs: Record<string, string>;
  /** A cancelled attempt its host gave back for the owner to retry (JobResult.givenBack). */
  givenBack: boolean;
  createdAt: Date;
  queuedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  /** The steps of the current attempt, by index. */
  steps: StepRecord[];
}

export interface StepResult {
  state: Exclude<StepState, "pending" | "running">;
  conclusion: StepConclusion | null;
  exitCode: number | null;
}

export interface JobResult {
  state: FinishedJobState;
  /** Why the job did not succeed. */
  reason?: string;
  /** The job's outputs, as JobFinished carried them. */
  outputs?: Record<string, string>;
  /**
   * A `cancelled` attempt its host gave up because it had lost the broker: the owner retries it,
   * and the newer attempt takes the job over (markRunning) instead of finding it finished.
   */
  givenBack?: boolean;
}

/** Whether `result` is recorded as given back: only a cancelled attempt can be. */
export function isGivenBack(result: JobResult): boolean {
  return result.givenBack === true && result.state === "cancelled";
}

export interface JobFilter {
  state?: JobState;
  label?: string;
  host?: string;
  /** Matches the repository's full name (`owner/name`) or its URL. */
  repo?: string;
  /** Default 100, at most 1000. */
  limit?: number;
}

export interface HostRegistration {
  /** The host name. */
  id: string;
  /** Label → how many VMs of that label the host runs at once. */
  labels: Record<string, number>;
  maxVms: number;
  version: string;
  backend: string;
  accelerator: string;
  startedAt: Date;
}

export interface HostRecord extends HostRegistration {
  draining: boolean;
  lastHeartbeatAt: Date;
}

/** A failed job's VM kept for debug SSH on a host, until `expiresAt`. Public material only. */
export interface DebugSessionRecord {
  jobId: string;
  hostId: string;
  /** "owner/name". */
  repository: string;
  label: string;
  /** Connect with `ssh -J <sshHost> -p <sshPort> <sshUser>@127.0.0.1`. */
  sshHost: string;
  sshPort: number;
  sshUser: string;
  hostKeyFingerprint: string;
  /** Who may log in, one entry per authorized key. */
  allowed: { who: string; fingerprint: string }[];
  createdAt: Date;
  expiresAt: Date;
}

/**
 * Job and host records. A job's state only moves forward (queued → running → terminal), whichever
 * writer comes first; a newer attempt takes over by compare-and-set, and writes for an older attempt
 * or a finished job are refused (the method returns false) rather than applied.
 */
export interface JobStore {
  /** Records a published job and its pending steps for that attempt; repeating it changes nothing. */
  recordQueued(job: NewJob, at?: Date): Promise<void>;
  /**
   * Claims the attempt for `hostId`: from `queued`, or from `running` or given back (see JobResult)
   * of an older attempt. False when the job is finished or a newer (or the same) attempt already runs. `details` lets a job that was
   * never recorded be inserted as running (and records this attempt's steps); without it an
   * unknown job is a DbError `unknown_job`.
   */
  markRunning(jobId: string, attempt: number, hostId: string, at: Date, details?: JobDetails): Promise<boolean>;
  /** False unless the step was pending, in the job's current, unfinished attempt. */
  stepStarted(jobId: string, attempt: number, index: number, at: Date): Promise<boolean>;
  /** False unless the step was pending or running, in the job's current, unfinished attempt. */
  stepFinished(jobId: string, attempt: number, index: number, result: StepResult, at: Date): Promise<boolean>;
  /**
   * Ends the current attempt. Steps still pending become skipped, steps still running cancelled.
   * False when the job is already finished or `attempt` is not the current one.
   */
  finishJob(jobId: string, attempt: number, result: JobResult, at: Date): Promise<boolean>;
  getJob(jobId: string): Promise<JobRecord | undefined>;
  /** Newest first. */
  listJobs(filter?: JobFilter): Promise<JobRecord[]>;
  /**
   * Deletes finished jobs (succeeded, failed, cancelled) created before `before`, with their
   * steps; queued and running jobs stay whatever their age. Resolves with how many were deleted.
   */
  pruneJobs(before: Date): Promise<number>;
  /** Registers a host, or refreshes it at start-up; keeps its `draining` flag. */
  upsertHost(host: HostRegistration, at: Date): Promise<void>;
  /** False when the host is unknown. */
  heartbeatHost(id: string, at: Date): Promise<boolean>;
  /** By id. */
  listHosts(): Promise<HostRecord[]>;
  /** False when the host is unknown. */
  setDraining(id: string, draining: boolean): Promise<boolean>;
  /** Records (or replaces) a kept debug VM. */
  recordDebugSession(session: DebugSessionRecord): Promise<void>;
  /** Forgets a kept debug VM once it is destroyed; false when there was none for the job. */
  endDebugSession(jobId: string): Promise<boolean>;
  /**
   * Forgets every debug VM a host recorded; at its start-up, since its VMs did not outlive the
   * previous process. Returns how many.
   */
  clearDebugSessions(hostId: string): Promise<number>;
  /** Kept debug VMs, soonest expiry first; those already past `expiresAt` at `now` are left out. */
  listDebugSessions(now?: Date): Promise<DebugSessionRecord[]>;
}

export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

export function listLimit(filter: JobFilter | undefined): number {
  const limit = filter?.limit ?? DEFAULT_LIST_LIMIT;
  return Math.min(Math.max(1, Math.floor(limit)), MAX_LIST_LIMIT);
}
