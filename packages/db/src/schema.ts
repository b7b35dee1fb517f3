import { sql } from "drizzle-orm";
import {
  boolean,
  check,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

// Tables are declared without a PostgreSQL schema: the connection's search_path picks it, so one
// set of migrations serves `public` in production and a throwaway schema per test.
// No column holds logs, secrets or keys: those live in the forge or nowhere.

export const JOB_STATES = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
export const JOB_SOURCES = ["forgejo", "github", "manual"] as const;
export const STEP_STATES = ["pending", "running", "succeeded", "failed", "cancelled", "skipped"] as const;
export const STEP_CONCLUSIONS = ["succeeded", "failed", "cancelled", "skipped"] as const;

/** `'a', 'b'` for a check constraint, from the same list that types the column. */
const sqlList = (values: readonly string[]) => sql.raw(values.map((v) => `'${v}'`).join(", "));

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

export const jobs = pgTable(
  "jobs",
  {
    id: uuid("id").primaryKey(),
    attempt: integer("attempt").notNull(),
    state: text("state", { enum: JOB_STATES }).notNull(),
    source: text("source", { enum: JOB_SOURCES }).notNull(),
    /** The runner instance that follows the job; the routing key of its events. */
    owner: text("owner").notNull(),
    /** The `runs-on` label. */
    label: text("label").notNull(),
    repoUrl: text("repo_url").notNull(),
    repoFullName: text("repo_full_name").notNull(),
    commitSha: text("commit_sha").notNull(),
    ref: text("ref").notNull(),
    workflowPath: text("workflow_path").notNull(),
    /** The key under `jobs:` in the workflow file. */
    jobKey: text("job_key").notNull(),
    jobName: text("job_name").notNull(),
    /** The host that runs (or ran) the current attempt. */
    hostId: text("host_id"),
    /** Why the job did not succeed, in words a user can act on. */
    reason: text("reason"),
    /**
     * The finished job's outputs (name → value; a value built from a secret is never among them),
     * so a host can answer an owner that lost the job's events with the whole result.
     */
    outputs: jsonb("outputs").$type<Record<string, string>>(),
    /**
     * The attempt was cancelled by its own host, which had lost the broker (lease − 2 × heartbeat):
     * its owner retries it, and the newer attempt may take the job over instead of being answered
     * with this end.
     */
    givenBack: boolean("given_back").notNull().default(false),
    createdAt: timestamptz("created_at").notNull().defaultNow(),
    queuedAt: timestamptz("queued_at").notNull().defaultNow(),
    startedAt: timestamptz("started_at"),
    finishedAt: timestamptz("finished_at"),
    updatedAt: timestamptz("updated_at").notNull().defaultNow(),
  },
  (t) => [
    check("jobs_state_check", sql`${t.state} in (${sqlList(JOB_STATES)})`),
    check("jobs_source_check", sql`${t.source} in (${sqlList(JOB_SOURCES)})`),
    check("jobs_attempt_check", sql`${t.attempt} >= 1`),
    // `ciadm jobs` filters by one of these and shows the newest first (created_at, then id, as
    // listJobs orders): each index hands over a filter's newest rows in that order, so a page costs
    // the same at a million jobs as at a hundred (docs/operations.md). The first also serves the
    // unfiltered list and `ciadm db prune`. NULLS FIRST is what `order by … desc` means: an index
    // built NULLS LAST (as 0000's was) cannot hand rows over in that order.
    index("jobs_created_at_idx").on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index("jobs_state_created_at_idx").on(t.state, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index("jobs_label_created_at_idx").on(t.label, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index("jobs_host_id_created_at_idx").on(t.hostId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index("jobs_repo_full_name_created_at_idx").on(
      t.repoFullName,
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index("jobs_repo_url_created_at_idx").on(t.repoUrl, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  ],
);

export const jobSteps = pgTable(
  "job_steps",
  {
    jobId: uuid("job_id").notNull(),
    attempt: integer("attempt").notNull(),
    idx: integer("idx").notNull(),
    name: text("name").notNull(),
    state: text("state", { enum: STEP_STATES }).notNull(),
    /** The outcome after `continue-on-error`, as the forge shows it. */
    conclusion: text("conclusion", { enum: STEP_CONCLUSIONS }),
    exitCode: integer("exit_code"),
    startedAt: timestamptz("started_at"),
    finishedAt: timestamptz("finished_at"),
  },
  (t) => [
    primaryKey({ name: "job_steps_pk", columns: [t.jobId, t.attempt, t.idx] }),
    foreignKey({ name: "job_steps_job_id_fk", columns: [t.jobId], foreignColumns: [jobs.id] }).onDelete("cascade"),
    check("job_steps_state_check", sql`${t.state} in (${sqlList(STEP_STATES)})`),
    check(
      "job_steps_conclusion_check",
      sql`${t.conclusion} is null or ${t.conclusion} in (${sqlList(STEP_CONCLUSIONS)})`,
    ),
  ],
);

export const hosts = pgTable("hosts", {
  /** The host name. */
  id: text("id").primaryKey(),
  /** Label → how many VMs of that label the host runs at once. */
  labels: jsonb("labels").$type<Record<string, number>>().notNull(),
  maxVms: integer("max_vms").notNull(),
  version: text("version").notNull(),
  backend: text("backend").notNull(),
  accelerator: text("accelerator").notNull(),
  draining: boolean("draining").notNull().default(false),
  lastHeartbeatAt: timestamptz("last_heartbeat_at").notNull(),
  startedAt: timestamptz("started_at").notNull(),
});

/**
 * Failed jobs' VMs kept for debug SSH (ADR-003), as `ciadm debug list` shows them. Written by the
 * orchestrator that keeps the VM, removed when it is destroyed. Public material only: the guest's
 * host key fingerprint and the fingerprints of the keys that may log in.
 */
export const debugSessions = pgTable(
  "debug_sessions",
  {
    jobId: uuid("job_id").primaryKey(),
    hostId: text("host_id").notNull(),
    repository: text("repository").notNull(),
    label: text("label").notNull(),
    /** How to connect: `ssh -J <sshHost> -p <sshPort> <sshUser>@127.0.0.1`. */
    sshHost: text("ssh_host").notNull(),
    sshPort: integer("ssh_port").notNull(),
    sshUser: text("ssh_user").notNull(),
    hostKeyFingerprint: text("host_key_fingerprint").notNull(),
    /** Who may log in: `{ who, fingerprint }` per authorized key. */
    allowed: jsonb("allowed").$type<{ who: string; fingerprint: string }[]>().notNull(),
    createdAt: timestamptz("created_at").notNull(),
    expiresAt: timestamptz("expires_at").notNull(),
  },
  (t) => [index("debug_sessions_host_id_idx").on(t.hostId)],
);
