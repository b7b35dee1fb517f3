import type pg from "pg";
import { isGivenBack, type JobDetails, type JobResult } from "./job-store.ts";

/**
 * The statements every job (or every host heartbeat) of a busy fleet runs, as fixed SQL text under
 * a name: each pooled connection parses and plans them once and then only binds values, and no
 * query builder runs per call. bench:fleet measured drizzle building these statements as the
 * largest part of a host's CPU per job (docs/operations.md, "Where the time goes"). The rest of
 * the store stays on drizzle: it runs per command, not per job.
 *
 * Tables are named without a schema: the pool's search_path picks it, so one text serves every
 * schema; a connection's plan follows the schema it was prepared under, which never changes.
 */

/**
 * Claims an attempt (markRunning): with `details`, a job never recorded as queued is inserted as
 * running; otherwise (or if it exists) the claim takes a queued attempt or replaces an older one
 * that runs or that its host gave back (clearing that attempt's end). Its steps are added either way. The update cannot see the row the insert adds (one
 * snapshot), so at most one of them takes it.
 */
const CLAIM = (insert: string) => `
  with inserted as (${insert}),
    claimed as (
      update jobs set state = 'running', attempt = $2, host_id = $3, started_at = $4, updated_at = $4,
        reason = null, outputs = null, finished_at = null, given_back = false
      where id = $1
        and ((state = 'queued' and attempt <= $2)
          or ((state = 'running' or (state = 'cancelled' and given_back)) and attempt < $2))
      returning id),
    steps as (
      insert into job_steps (job_id, attempt, idx, name, state)
      select $1, $2, s.idx, s.name, 'pending'
      from unnest($5::int[], $6::text[]) as s(idx, name)
      where exists (select from inserted) or exists (select from claimed)
      on conflict do nothing)
  select exists (select from inserted) or exists (select from claimed) as taken,
    exists (select from jobs where id = $1) as known`;

const CLAIM_KNOWN = CLAIM("select null::uuid as id where false");

const CLAIM_OR_INSERT = CLAIM(`
  insert into jobs (id, attempt, state, host_id, created_at, queued_at, started_at, updated_at,
    source, owner, label, repo_url, repo_full_name, commit_sha, ref, workflow_path, job_key, job_name)
  values ($1, $2, 'running', $3, $4, $4, $4, $4, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
  on conflict do nothing
  returning id`);

/**
 * Ends an attempt (finishJob): steps that never ran are skipped, steps still running are
 * cancelled, but only if this attempt's row was the one finished.
 */
const FINISH = `
  with finished as (
      update jobs set state = $3, reason = $4, outputs = $5::jsonb, finished_at = $6, updated_at = $6,
        given_back = $7
      where id = $1 and attempt = $2 and state in ('queued', 'running')
      returning id),
    steps as (
      update job_steps
      set state = case when state = 'pending' then 'skipped' else 'cancelled' end,
        conclusion = case when state = 'pending' then 'skipped' else 'cancelled' end,
        finished_at = case when state = 'running' then $6 else finished_at end
      where job_id = $1 and attempt = $2 and state in ('pending', 'running')
        and exists (select from finished))
  select exists (select from finished) as finished`;

const HEARTBEAT = "update hosts set last_heartbeat_at = $2 where id = $1 returning id";

/** The per-job statements on one pool. */
export class PerJobStatements {
  constructor(private readonly pool: pg.Pool) {}

  /** Whether this attempt is now this host's, and whether the job has a row at all. */
  async claim(
    jobId: string,
    attempt: number,
    hostId: string,
    at: Date,
    details: JobDetails | undefined,
  ): Promise<{ taken: boolean; known: boolean }> {
    const steps = details?.steps ?? [];
    const values: unknown[] = [jobId, attempt, hostId, at, steps.map((s) => s.index), steps.map((s) => s.name)];
    if (details !== undefined) {
      values.push(
        details.source,
        details.owner,
        details.label,
        details.repoUrl,
        details.repoFullName,
        details.commitSha,
        details.ref,
        details.workflowPath,
        details.jobKey,
        details.jobName,
      );
    }
    const { rows } = await this.pool.query<{ taken: boolean; known: boolean }>({
      name: details === undefined ? "solstice_claim_known" : "solstice_claim_or_insert",
      text: details === undefined ? CLAIM_KNOWN : CLAIM_OR_INSERT,
      values,
    });
    return { taken: rows[0]?.taken === true, known: rows[0]?.known === true };
  }

  /** Whether this attempt's row was unfinished and is now finished. */
  async finish(jobId: string, attempt: number, result: JobResult, at: Date): Promise<boolean> {
    const { rows } = await this.pool.query<{ finished: boolean }>({
      name: "solstice_finish_job",
      text: FINISH,
      values: [
        jobId,
        attempt,
        result.state,
        result.reason ?? null,
        JSON.stringify(result.outputs ?? {}),
        at,
        isGivenBack(result),
      ],
    });
    return rows[0]?.finished === true;
  }

  /** Whether the host has a row (and its heartbeat is now `at`). */
  async heartbeat(hostId: string, at: Date): Promise<boolean> {
    const { rowCount } = await this.pool.query({
      name: "solstice_heartbeat_host",
      text: HEARTBEAT,
      values: [hostId, at],
    });
    return (rowCount ?? 0) > 0;
  }
}
