/**
 * The database at a million jobs: generates `--jobs` job rows (3 steps each) spread over 30 days,
 * 200 hosts, 4 labels and 2,000 repositories in a database of its own, then times `ciadm jobs`
 * (the real CLI, start to exit) and the store's own query for each filter, with the job-list
 * indexes of migration 0003 and without them (dropped, then made again), the table sizes per job,
 * and `ciadm db prune --older-than 7d`. The database is dropped at the end.
 * Usage: corepack pnpm bench:db [--jobs 1000000] [--runs 5]
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { parseArgs } from "node:util";
import { createPgJobStore, type JobFilter, migrate } from "@solstice/db";
import pg from "pg";
import { pino } from "pino";
import { formatTable, median } from "./summary-table.ts";

const { values } = parseArgs({
  options: { jobs: { type: "string", default: "1000000" }, runs: { type: "string", default: "3" } },
});
const jobCount = Number(values.jobs);
const runs = Number(values.runs);
const serverUrl = process.env.SOLSTICE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const database = `solstice_scale_${randomUUID().slice(0, 8)}`;
const databaseUrl = Object.assign(new URL(serverUrl), { pathname: `/${database}` }).toString();
const ciadm = path.join(import.meta.dirname, "../packages/ciadm/bin/ciadm.js");
const log = pino({ level: "silent" });

// The indexes 0003 added, as the "without" case drops and re-creates them.
const LIST_INDEXES: Record<string, string> = {
  jobs_created_at_idx: `("created_at" desc nulls first, "id" desc nulls first)`,
  jobs_state_created_at_idx: `("state", "created_at" desc nulls first, "id" desc nulls first)`,
  jobs_label_created_at_idx: `("label", "created_at" desc nulls first, "id" desc nulls first)`,
  jobs_host_id_created_at_idx: `("host_id", "created_at" desc nulls first, "id" desc nulls first)`,
  jobs_repo_full_name_created_at_idx: `("repo_full_name", "created_at" desc nulls first, "id" desc nulls first)`,
  jobs_repo_url_created_at_idx: `("repo_url", "created_at" desc nulls first, "id" desc nulls first)`,
};

// `where` is listJobs' query for the filter (`order by created_at desc, id desc limit 50`), for
// EXPLAIN ANALYZE: the server's own time and plan, which a loaded machine blurs less than wall time.
const cases: Array<{ name: string; args: string[]; filter: JobFilter; where: string }> = [
  { name: "ciadm jobs", args: [], filter: {}, where: "true" },
  {
    name: "ciadm jobs --state running",
    args: ["--state", "running"],
    filter: { state: "running" },
    where: "state = 'running'",
  },
  {
    name: "ciadm jobs --state failed",
    args: ["--state", "failed"],
    filter: { state: "failed" },
    where: "state = 'failed'",
  },
  {
    name: "ciadm jobs --label label-2",
    args: ["--label", "label-2"],
    filter: { label: "label-2" },
    where: "label = 'label-2'",
  },
  {
    name: "ciadm jobs --host host-042",
    args: ["--host", "host-042"],
    filter: { host: "host-042" },
    where: "host_id = 'host-042'",
  },
  {
    name: "ciadm jobs --repo org/repo-17",
    args: ["--repo", "org/repo-17"],
    filter: { repo: "org/repo-17" },
    where: "(repo_full_name = 'org/repo-17' or repo_url = 'org/repo-17')",
  },
];

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

/** The server's execution time and the plan in a few words: indexes used, and whether it sorted. */
async function explain(db: pg.Client, where: string): Promise<{ ms: number; plan: string }> {
  const result = await db.query(
    `explain (analyze, format json) select * from jobs where ${where} order by created_at desc, id desc limit 50`,
  );
  const top = ((result.rows[0]?.["QUERY PLAN"] ?? []) as Array<{ Plan: PlanNode; "Execution Time": number }>)[0];
  const nodes: PlanNode[] = [];
  const walk = (node: PlanNode) => {
    nodes.push(node);
    for (const child of node.Plans ?? []) walk(child);
  };
  if (top) walk(top.Plan);
  const indexes = [...new Set(nodes.flatMap((n) => (n["Index Name"] ? [n["Index Name"]] : [])))];
  const sorted = nodes.some((n) => n["Node Type"].includes("Sort"));
  const scan =
    indexes.length > 0
      ? indexes.join(" + ")
      : nodes.some((n) => n["Node Type"].includes("Seq Scan"))
        ? "seq scan"
        : "?";
  return { ms: top?.["Execution Time"] ?? 0, plan: `${scan}${sorted ? ", then sort" : ""}` };
}

function runCli(args: string[]): void {
  execFileSync(process.execPath, [ciadm, ...args, "--database-url", databaseUrl, "--json"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}

/** The median of `runs` readings. */
async function medianOf(read: () => Promise<number> | number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < runs; i++) readings.push(await read());
  return median(readings);
}

/** A reading for medianOf: how many milliseconds `action` takes. */
function timed(action: () => unknown): () => Promise<number> {
  return async () => {
    const started = performance.now();
    await action();
    return performance.now() - started;
  };
}

async function timeCases(db: pg.Client, label: string): Promise<string[][]> {
  const { store, close } = createPgJobStore({ databaseUrl, log });
  try {
    const rows: string[][] = [];
    for (const c of cases) {
      const query = await medianOf(timed(() => store.listJobs(c.filter)));
      const cli = await medianOf(timed(() => runCli(["jobs", ...c.args])));
      const server = await medianOf(async () => (await explain(db, c.where)).ms);
      const { plan } = await explain(db, c.where);
      rows.push([c.name, label, plan, server.toFixed(1), query.toFixed(1), cli.toFixed(0)]);
    }
    const sample = (await store.listJobs({ limit: 1 }))[0]?.jobId ?? "";
    const lookup = await medianOf(timed(() => store.getJob(sample)));
    rows.push(["one job by id (ciadm job show, ciadm logs)", label, "jobs_pkey", "–", lookup.toFixed(1), "–"]);
    return rows;
  } finally {
    await close();
  }
}

const admin = new pg.Client({ connectionString: serverUrl });
await admin.connect();
await admin.query(`create database "${database}"`);
try {
  await migrate({ databaseUrl, log });
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const filled = performance.now();
    // Newest first every 2.6 s over 30 days; 1 in 1,000 running, 1 in 1,000 queued, 1 in 10 failed.
    await db.query(
      `insert into jobs (id, attempt, state, source, owner, label, repo_url, repo_full_name, commit_sha, ref,
         workflow_path, job_key, job_name, host_id, reason, created_at, queued_at, started_at, finished_at, updated_at)
       select gen_random_uuid(), 1,
         case when g % 1000 = 0 then 'running' when g % 1000 = 1 then 'queued' when g % 10 = 0 then 'failed' else 'succeeded' end,
         'forgejo', 'runner-' || (g % 4), 'label-' || (g % 4),
         'https://forge.example/org/repo-' || (g % 2000), 'org/repo-' || (g % 2000),
         md5(g::text) || substr(md5(g::text), 1, 8), 'refs/heads/main', '.forgejo/workflows/ci.yml', 'build',
         'build (' || (g % 7) || ')', 'host-' || lpad((g % 200)::text, 3, '0'),
         case when g % 10 = 0 and g % 1000 > 1 then 'step "make test" failed: exit status 2' end,
         t, t, t + interval '5 s', case when g % 1000 > 1 then t + interval '5 min' end, t + interval '5 min'
       from generate_series(1, $1::int) g, lateral (select now() - g * (interval '30 days' / $1::int) as t) times`,
      [jobCount],
    );
    await db.query(
      `insert into job_steps (job_id, attempt, idx, name, state, conclusion, exit_code, started_at, finished_at)
       select j.id, 1, s, (array['checkout', 'make', 'make test'])[s + 1], 'succeeded', 'succeeded', 0,
         j.started_at, j.started_at + interval '1 min'
       from jobs j, generate_series(0, 2) s`,
    );
    await db.query("analyze");
    const fillSeconds = (performance.now() - filled) / 1000;
    const size = await db.query<{ jobs: string; steps: string; indexes: string }>(
      `select pg_total_relation_size('jobs') as jobs, pg_total_relation_size('job_steps') as steps,
         pg_indexes_size('jobs') as indexes`,
    );
    const bytes = size.rows[0] ?? { jobs: "0", steps: "0", indexes: "0" };

    const rows = await timeCases(db, "with 0003");
    for (const name of Object.keys(LIST_INDEXES)) await db.query(`drop index "${name}"`);
    // The indexes of migration 0000.
    await db.query("create index jobs_created_at_idx on jobs (created_at desc nulls last)");
    await db.query("create index jobs_state_idx on jobs (state)");
    await db.query("create index jobs_label_idx on jobs (label)");
    rows.push(...(await timeCases(db, "before 0003")));
    await db.query("drop index jobs_created_at_idx; drop index jobs_state_idx; drop index jobs_label_idx");
    for (const [name, columns] of Object.entries(LIST_INDEXES))
      await db.query(`create index "${name}" on jobs ${columns}`);

    rows.sort((a, b) => cases.findIndex((c) => c.name === a[0]) - cases.findIndex((c) => c.name === b[0]));
    process.stdout.write(
      formatTable(
        ["query", "indexes", "plan", "server ms (median)", "store query ms (median)", "ciadm wall ms (median)"],
        rows,
      ),
    );
    const mib = (n: string) => (Number(n) / 1024 / 1024).toFixed(0);
    process.stdout.write(
      `\n${jobCount} jobs, ${jobCount * 3} steps generated in ${fillSeconds.toFixed(0)} s; jobs ${mib(bytes.jobs)} MiB (of it indexes ${mib(bytes.indexes)} MiB), job_steps ${mib(bytes.steps)} MiB: ${((Number(bytes.jobs) + Number(bytes.steps)) / jobCount).toFixed(0)} bytes per job with 3 steps\n`,
    );
    const pruneStarted = performance.now();
    const pruned = execFileSync(process.execPath, [
      ciadm,
      "db",
      "prune",
      "--older-than",
      "7d",
      "--database-url",
      databaseUrl,
      "--json",
    ]).toString();
    const pruneSeconds = (performance.now() - pruneStarted) / 1000;

    process.stdout.write(`ciadm db prune --older-than 7d: ${pruned.trim()} in ${pruneSeconds.toFixed(1)} s\n`);
  } finally {
    await db.end();
  }
} finally {
  await admin.query(`drop database if exists "${database}" with (force)`);
  await admin.end();
}
