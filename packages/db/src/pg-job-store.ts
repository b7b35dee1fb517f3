import { and, asc, desc, eq, exists, gt, inArray, lt, or, type SQL } from "drizzle-orm";
import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import pg from "pg";
import type { Logger } from "pino";
import { checkSchemaName, DbError } from "./db-error.ts";
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
import { FINISHED_STATES, listLimit } from "./job-store.ts";
import { PerJobStatements } from "./per-job-statements.ts";
import { debugSessions, hosts, jobSteps, jobs } from "./schema.ts";

export interface PgJobStoreOptions {
  databaseUrl: string;
  /** PostgreSQL schema holding the tables (see `migrate`). Default `public`. */
  schema?: string;
  log: Logger;
  /** Pool size. Default 5. */
  maxConnections?: number;
  /** How long to wait for a connection. Default 10000. */
  connectTimeoutMs?: number;
  /** Server-side bound on every statement. Default 15000. */
  statementTimeoutMs?: number;
}

type Db = NodePgDatabase<Record<string, never>>;
type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
type JobRow = typeof jobs.$inferSelect;
type StepRow = typeof jobSteps.$inferSelect;

const UNFINISHED = ["queued", "running"] as const;

/** Opens a pool on the database; `close()` ends it. Run `migrate` first. */
/** Jobs deleted per statement by pruneJobs (their steps go with them, by the foreign key). */
const PRUNE_BATCH = 5_000;

export function createPgJobStore(opts: PgJobStoreOptions): { store: PgJobStore; close(): Promise<void> } {
  const schema = checkSchemaName(opts.schema ?? "public");
  const log = opts.log.child({ component: "job-store", schema });
  const pool = new pg.Pool({
    connectionString: opts.databaseUrl,
    max: opts.maxConnections ?? 5,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    statement_timeout: opts.statementTimeoutMs ?? 15_000,
    options: `-c search_path=${schema}`,
  });
  // An idle client that loses its connection emits here; unhandled, it would crash the process.
  pool.on("error", (err) => log.warn({ err: err.message }, "idle database connection failed"));
  return { store: new PgJobStore(drizzle(pool), new PerJobStatements(pool)), close: () => pool.end() };
}

export class PgJobStore implements JobStore {
  constructor(
    private readonly db: Db,
    /** What every job and heartbeat runs, prepared (per-job-statements.ts). */
    private readonly perJob: PerJobStatements,
  ) {}

  async recordQueued(job: NewJob, at: Date = new Date()): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx
        .insert(jobs)
        .values(jobRow(job.jobId, job.attempt, job, { state: "queued", createdAt: at, queuedAt: at, updatedAt: at }))
        .onConflictDoNothing();
      await insertSteps(tx, job.jobId, job.attempt, job.steps);
    });
  }

  async markRunning(jobId: string, attempt: number, hostId: string, at: Date, details?: JobDetails): Promise<boolean> {
    // One prepared statement (per-job-statements.ts): every job of a busy fleet passes here.
    const { taken, known } = await this.perJob.claim(jobId, attempt, hostId, at, details);
    if (taken) return true;
    if (details === undefined && !known) throw unknownJob(jobId);
    return false;
  }

  async stepStarted(jobId: string, attempt: number, index: number, at: Date): Promise<boolean> {
    const updated = await this.db
      .update(jobSteps)
      .set({ state: "running", startedAt: at })
      .where(and(stepKey(jobId, attempt, index), eq(jobSteps.state, "pending"), this.onCurrentAttempt(jobId, attempt)))
      .returning({ idx: jobSteps.idx });
    return updated.length > 0;
  }

  async stepFinished(jobId: string, attempt: number, index: number, result: StepResult, at: Date): Promise<boolean> {
    const updated = await this.db
      .update(jobSteps)
      .set({ state: result.state, conclusion: result.conclusion, exitCode: result.exitCode, finishedAt: at })
      .where(
        and(
          stepKey(jobId, attempt, index),
          inArray(jobSteps.state, ["pending", "running"]),
          this.onCurrentAttempt(jobId, attempt),
        ),
      )
      .returning({ idx: jobSteps.idx });
    return updated.length > 0;
  }

  finishJob(jobId: string, attempt: number, result: JobResult, at: Date): Promise<boolean> {
    return this.perJob.finish(jobId, attempt, result, at);
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const [row] = await this.db.select().from(jobs).where(eq(jobs.id, jobId)).limit(1);
    if (row === undefined) return undefined;
    return toJobRecord(row, await this.stepsOf([row]));
  }

  async listJobs(filter: JobFilter = {}): Promise<JobRecord[]> {
    const conditions: SQL[] = [];
    if (filter.state !== undefined) conditions.push(eq(jobs.state, filter.state));
    if (filter.label !== undefined) conditions.push(eq(jobs.label, filter.label));
    if (filter.host !== undefined) conditions.push(eq(jobs.hostId, filter.host));
    if (filter.repo !== undefined) {
      const repo = or(eq(jobs.repoFullName, filter.repo), eq(jobs.repoUrl, filter.repo));
      if (repo !== undefined) conditions.push(repo);
    }
    const rows = await this.db
      .select()
      .from(jobs)
      .where(and(...conditions))
      .orderBy(desc(jobs.createdAt), desc(jobs.id))
      .limit(listLimit(filter));
    const steps = await this.stepsOf(rows);
    return rows.map((row) => toJobRecord(row, steps));
  }

  async pruneJobs(before: Date): Promise<number> {
    // In batches, each its own short transaction, so a first prune of months of history never
    // holds locks on the jobs table for long while orchestrators write to it.
    let deleted = 0;
    for (;;) {
      const batch = this.db
        .select({ id: jobs.id })
        .from(jobs)
        .where(and(inArray(jobs.state, [...FINISHED_STATES]), lt(jobs.createdAt, before)))
        .limit(PRUNE_BATCH);
      const rows = await this.db.delete(jobs).where(inArray(jobs.id, batch)).returning({ id: jobs.id });
      deleted += rows.length;
      if (rows.length < PRUNE_BATCH) return deleted;
    }
  }

  async upsertHost(host: HostRegistration, at: Date): Promise<void> {
    const fields = {
      labels: host.labels,
      maxVms: host.maxVms,
      version: host.version,
      backend: host.backend,
      accelerator: host.accelerator,
      startedAt: host.startedAt,
      lastHeartbeatAt: at,
    };
    await this.db
      .insert(hosts)
      .values({ id: host.id, ...fields })
      .onConflictDoUpdate({ target: hosts.id, set: fields });
  }

  heartbeatHost(id: string, at: Date): Promise<boolean> {
    return this.perJob.heartbeat(id, at);
  }

  async listHosts(): Promise<HostRecord[]> {
    return this.db.select().from(hosts).orderBy(asc(hosts.id));
  }

  async setDraining(id: string, draining: boolean): Promise<boolean> {
    const updated = await this.db.update(hosts).set({ draining }).where(eq(hosts.id, id)).returning({ id: hosts.id });
    return updated.length > 0;
  }

  async recordDebugSession(session: DebugSessionRecord): Promise<void> {
    const { jobId, ...fields } = session;
    await this.db
      .insert(debugSessions)
      .values(session)
      .onConflictDoUpdate({ target: debugSessions.jobId, set: fields });
  }

  async endDebugSession(jobId: string): Promise<boolean> {
    const deleted = await this.db
      .delete(debugSessions)
      .where(eq(debugSessions.jobId, jobId))
      .returning({ id: debugSessions.jobId });
    return deleted.length > 0;
  }

  async clearDebugSessions(hostId: string): Promise<number> {
    const deleted = await this.db
      .delete(debugSessions)
      .where(eq(debugSessions.hostId, hostId))
      .returning({ id: debugSessions.jobId });
    return deleted.length;
  }

  async listDebugSessions(now: Date = new Date()): Promise<DebugSessionRecord[]> {
    return this.db
      .select()
      .from(debugSessions)
      .where(gt(debugSessions.expiresAt, now))
      .orderBy(asc(debugSessions.expiresAt), asc(debugSessions.jobId));
  }

  /** Step writes count only for the attempt the job is on, while it is unfinished. */
  private onCurrentAttempt(jobId: string, attempt: number): SQL {
    return exists(
      this.db
        .select({ id: jobs.id })
        .from(jobs)
        .where(and(eq(jobs.id, jobId), eq(jobs.attempt, attempt), inArray(jobs.state, UNFINISHED))),
    );
  }

  /** The current attempt's steps of each job, keyed by job id. */
  private async stepsOf(rows: JobRow[]): Promise<Map<string, StepRow[]>> {
    const byJob = new Map<string, StepRow[]>();
    if (rows.length === 0) return byJob;
    const attempts = new Map(rows.map((r) => [r.id, r.attempt]));
    const steps = await this.db
      .select()
      .from(jobSteps)
      .where(
        inArray(
          jobSteps.jobId,
          rows.map((r) => r.id),
        ),
      )
      .orderBy(asc(jobSteps.idx));
    for (const step of steps) {
      if (attempts.get(step.jobId) !== step.attempt) continue;
      const list = byJob.get(step.jobId) ?? [];
      list.push(step);
      byJob.set(step.jobId, list);
    }
    return byJob;
  }
}

function jobRow(
  jobId: string,
  attempt: number,
  details: JobDetails,
  fields: Pick<JobRow, "state" | "createdAt" | "queuedAt" | "updatedAt"> & Partial<JobRow>,
): typeof jobs.$inferInsert {
  return {
    id: jobId,
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
    ...fields,
  };
}

async function insertSteps(tx: Tx, jobId: string, attempt: number, steps: JobDetails["steps"]): Promise<void> {
  if (steps.length === 0) return;
  await tx
    .insert(jobSteps)
    .values(steps.map((s) => ({ jobId, attempt, idx: s.index, name: s.name, state: "pending" as const })))
    .onConflictDoNothing();
}

function stepKey(jobId: string, attempt: number, index: number): SQL | undefined {
  return and(eq(jobSteps.jobId, jobId), eq(jobSteps.attempt, attempt), eq(jobSteps.idx, index));
}

function toJobRecord(row: JobRow, steps: Map<string, StepRow[]>): JobRecord {
  return {
    jobId: row.id,
    attempt: row.attempt,
    state: row.state,
    source: row.source,
    owner: row.owner,
    label: row.label,
    repoUrl: row.repoUrl,
    repoFullName: row.repoFullName,
    commitSha: row.commitSha,
    ref: row.ref,
    workflowPath: row.workflowPath,
    jobKey: row.jobKey,
    jobName: row.jobName,
    hostId: row.hostId,
    reason: row.reason,
    outputs: row.outputs ?? {},
    givenBack: row.givenBack,
    createdAt: row.createdAt,
    queuedAt: row.queuedAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    updatedAt: row.updatedAt,
    steps: (steps.get(row.id) ?? []).map(toStepRecord),
  };
}

function toStepRecord(row: StepRow): StepRecord {
  return {
    index: row.idx,
    name: row.name,
    state: row.state,
    conclusion: row.conclusion,
    exitCode: row.exitCode,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
  };
}

function unknownJob(jobId: string): DbError {
  return new DbError("unknown_job", `job ${jobId} has no record`, {
    hint: "pass the job's details to markRunning so a job that was never recorded as queued can be inserted",
  });
}
