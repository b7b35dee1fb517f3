import { DbError } from "./db-error.ts";
import type {
  DebugSessionRecord,
  HostRecord,
  HostRegistration,
  JobDetails,
  JobFilter,
  JobRecord,
  JobResult,
  JobStore,
  NewJob,
  StepRecord,
  StepResult,
} from "./job-store.ts";
import { FINISHED_STATES, isGivenBack, listLimit } from "./job-store.ts";

type StoredJob = Omit<JobRecord, "steps">;

/**
 * The JobStore of the embedded local run (`ciadm run` without a broker): the same rules as
 * PgJobStore, kept in memory for the life of the process. Records handed out are copies.
 */
export class MemoryJobStore implements JobStore {
  private readonly jobs = new Map<string, StoredJob>();
  /** job id → `attempt:index` → step. */
  private readonly steps = new Map<string, Map<string, StepRecord>>();
  private readonly hosts = new Map<string, HostRecord>();
  private readonly debugSessions = new Map<string, DebugSessionRecord>();

  async recordQueued(job: NewJob, at: Date = new Date()): Promise<void> {
    if (!this.jobs.has(job.jobId)) {
      this.jobs.set(
        job.jobId,
        newJob(job.jobId, job.attempt, job, at, { state: "queued", hostId: null, startedAt: null }),
      );
    }
    this.insertSteps(job.jobId, job.attempt, job.steps);
  }

  async markRunning(jobId: string, attempt: number, hostId: string, at: Date, details?: JobDetails): Promise<boolean> {
    const job = this.jobs.get(jobId);
    if (job === undefined) {
      if (details === undefined) {
        throw new DbError("unknown_job", `job ${jobId} has no record`, {
          hint: "pass the job's details to markRunning so a job that was never recorded as queued can be inserted",
        });
      }
      this.jobs.set(jobId, newJob(jobId, attempt, details, at, { state: "running", hostId, startedAt: at }));
      this.insertSteps(jobId, attempt, details.steps);
      return true;
    }
    const givenBack = job.state === "cancelled" && job.givenBack;
    const claimable =
      (job.state === "queued" && job.attempt <= attempt) ||
      ((job.state === "running" || givenBack) && job.attempt < attempt);
    if (!claimable) return false;
    Object.assign(job, {
      state: "running",
      attempt,
      hostId,
      startedAt: at,
      updatedAt: at,
      reason: null,
      outputs: {},
      finishedAt: null,
      givenBack: false,
    });
    if (details !== undefined) this.insertSteps(jobId, attempt, details.steps);
    return true;
  }

  async stepStarted(jobId: string, attempt: number, index: number, at: Date): Promise<boolean> {
    const step = this.currentStep(jobId, attempt, index);
    if (step?.state !== "pending") return false;
    Object.assign(step, { state: "running", startedAt: at });
    return true;
  }

  async stepFinished(jobId: string, attempt: number, index: number, result: StepResult, at: Date): Promise<boolean> {
    const step = this.currentStep(jobId, attempt, index);
    if (step === undefined || (step.state !== "pending" && step.state !== "running")) return false;
    Object.assign(step, {
      state: result.state,
      conclusion: result.conclusion,
      exitCode: result.exitCode,
      finishedAt: at,
    });
    return true;
  }

  async finishJob(jobId: string, attempt: number, result: JobResult, at: Date): Promise<boolean> {
    const job = this.jobs.get(jobId);
    if (job === undefined || job.attempt !== attempt || !isUnfinished(job)) return false;
    Object.assign(job, {
      state: result.state,
      reason: result.reason ?? null,
      outputs: { ...result.outputs },
      finishedAt: at,
      updatedAt: at,
      givenBack: isGivenBack(result),
    });
    for (const step of this.stepsOf(jobId, attempt)) {
      if (step.state === "pending") Object.assign(step, { state: "skipped", conclusion: "skipped" });
      else if (step.state === "running")
        Object.assign(step, { state: "cancelled", conclusion: "cancelled", finishedAt: at });
    }
    return true;
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const job = this.jobs.get(jobId);
    return job === undefined ? undefined : this.toRecord(job);
  }

  async listJobs(filter: JobFilter = {}): Promise<JobRecord[]> {
    return [...this.jobs.values()]
      .filter(
        (job) =>
          (filter.state === undefined || job.state === filter.state) &&
          (filter.label === undefined || job.label === filter.label) &&
          (filter.host === undefined || job.hostId === filter.host) &&
          (filter.repo === undefined || job.repoFullName === filter.repo || job.repoUrl === filter.repo),
      )
      .sort(
        (a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.jobId < b.jobId ? 1 : a.jobId > b.jobId ? -1 : 0),
      )
      .slice(0, listLimit(filter))
      .map((job) => this.toRecord(job));
  }

  async pruneJobs(before: Date): Promise<number> {
    let deleted = 0;
    for (const [id, job] of this.jobs) {
      if ((FINISHED_STATES as readonly string[]).includes(job.state) && job.createdAt < before) {
        this.jobs.delete(id);
        this.steps.delete(id);
        deleted++;
      }
    }
    return deleted;
  }

  async upsertHost(host: HostRegistration, at: Date): Promise<void> {
    const draining = this.hosts.get(host.id)?.draining ?? false;
    this.hosts.set(host.id, structuredClone({ ...host, draining, lastHeartbeatAt: at }));
  }

  async heartbeatHost(id: string, at: Date): Promise<boolean> {
    const host = this.hosts.get(id);
    if (host === undefined) return false;
    host.lastHeartbeatAt = at;
    return true;
  }

  async listHosts(): Promise<HostRecord[]> {
    return [...this.hosts.values()]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((h) => structuredClone(h));
  }

  async setDraining(id: string, draining: boolean): Promise<boolean> {
    const host = this.hosts.get(id);
    if (host === undefined) return false;
    host.draining = draining;
    return true;
  }

  async recordDebugSession(session: DebugSessionRecord): Promise<void> {
    this.debugSessions.set(session.jobId, structuredClone(session));
  }

  async endDebugSession(jobId: string): Promise<boolean> {
    return this.debugSessions.delete(jobId);
  }

  async clearDebugSessions(hostId: string): Promise<number> {
    let cleared = 0;
    for (const [jobId, session] of this.debugSessions) {
      if (session.hostId !== hostId) continue;
      this.debugSessions.delete(jobId);
      cleared++;
    }
    return cleared;
  }

  async listDebugSessions(now: Date = new Date()): Promise<DebugSessionRecord[]> {
    return [...this.debugSessions.values()]
      .filter((s) => s.expiresAt.getTime() > now.getTime())
      .sort((a, b) => a.expiresAt.getTime() - b.expiresAt.getTime() || (a.jobId < b.jobId ? -1 : 1))
      .map((s) => structuredClone(s));
  }

  private insertSteps(jobId: string, attempt: number, steps: JobDetails["steps"]): void {
    let byKey = this.steps.get(jobId);
    if (byKey === undefined) {
      byKey = new Map();
      this.steps.set(jobId, byKey);
    }
    for (const { index, name } of steps) {
      const key = `${attempt}:${index}`;
      if (byKey.has(key)) continue;
      byKey.set(key, {
        index,
        name,
        state: "pending",
        conclusion: null,
        exitCode: null,
        startedAt: null,
        finishedAt: null,
      });
    }
  }

  /** A step of the attempt the job is on, while it is unfinished. */
  private currentStep(jobId: string, attempt: number, index: number): StepRecord | undefined {
    const job = this.jobs.get(jobId);
    if (job === undefined || job.attempt !== attempt || !isUnfinished(job)) return undefined;
    return this.steps.get(jobId)?.get(`${attempt}:${index}`);
  }

  private stepsOf(jobId: string, attempt: number): StepRecord[] {
    const prefix = `${attempt}:`;
    return [...(this.steps.get(jobId) ?? new Map<string, StepRecord>()).entries()]
      .filter(([key]) => key.startsWith(prefix))
      .map(([, step]) => step)
      .sort((a, b) => a.index - b.index);
  }

  private toRecord(job: StoredJob): JobRecord {
    return structuredClone({ ...job, steps: this.stepsOf(job.jobId, job.attempt) });
  }
}

function newJob(
  jobId: string,
  attempt: number,
  details: JobDetails,
  at: Date,
  fields: Pick<StoredJob, "state" | "hostId" | "startedAt">,
): StoredJob {
  return {
    jobId,
    attempt,
    source: details.source,
    owner: details.owner,
    label: details.label,
    repoUrl: details.repoUrl,
    repoFullName: details.repoFullName,
    commitSha: details.commitSha,
    ref: details.ref,
    workflowPath: details.workflowPath,
    jobKey: details.jobKey,
    jobName: details.jobName,
    reason: null,
    outputs: {},
    givenBack: false,
    createdAt: at,
    queuedAt: at,
    finishedAt: null,
    updatedAt: at,
    ...fields,
  };
}

function isUnfinished(job: StoredJob): boolean {
  return job.state === "queued" || job.state === "running";
}
