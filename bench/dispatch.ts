/**
 * Dispatch benchmark, with a backend that boots nothing (bench/shell-backend.ts): everything else
 * is real — the orchestrator, executor, SSH, RabbitMQ and PostgreSQL on this machine.
 *   jobs/s  — N one-step jobs (`true`) published at once, from the first publish to the last
 *             JobFinished at the owner, with the host's capacity as the parallelism;
 *   lines/s — one step printing L lines, from its StepStarted to the last line at the owner.
 * Usage: corepack pnpm bench:dispatch [--jobs 200] [--capacity 8] [--lines 200000]
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { connectBus } from "@solstice/bus";
import { loadConfig, orchestratorConfigSchema } from "@solstice/config";
import { createPgJobStore, migrate } from "@solstice/db";
import { startOrchestrator } from "@solstice/orchestrator";
import { create, type JobEvent, JobRequestSchema, JobSource, SCHEMA_VERSION } from "@solstice/protocol";
import pg from "pg";
import { pino } from "pino";
import { createShellBackend } from "./shell-backend.ts";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "200" },
    capacity: { type: "string", default: "8" },
    lines: { type: "string", default: "200000" },
  },
});
const jobCount = Number(values.jobs);
const capacity = Number(values.capacity);
const lineCount = Number(values.lines);
const amqpUrl = process.env.SOLSTICE_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const databaseUrl = process.env.SOLSTICE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

const id = randomUUID().slice(0, 8);
const namespace = `bench-${id}`;
const schema = `bench_${id}`;
const owner = `bench-${id}`;
const log = pino({ level: process.env.SOLSTICE_BENCH_LOG ?? "silent" });

await migrate({ databaseUrl, schema, log });
const { store, close: closeStore } = createPgJobStore({ databaseUrl, schema, log });
const bus = await connectBus({ url: amqpUrl, namespace, log, maxQueuedJobs: Math.max(10_000, jobCount) });
const config = loadConfig("orchestrator", orchestratorConfigSchema, {
  SOLSTICE_AMQP_URL: amqpUrl,
  SOLSTICE_DATABASE_URL: databaseUrl,
  SOLSTICE_DATABASE_SCHEMA: schema,
  SOLSTICE_NAMESPACE: namespace,
  SOLSTICE_HOST_ID: `bench-host-${id}`,
  SOLSTICE_CAPACITY: `bench=${capacity}`,
});
const orchestrator = await startOrchestrator({
  config,
  bus,
  store,
  backend: createShellBackend(),
  accelerator: "none",
  log,
});

const waiting = new Map<string, (event: JobEvent) => void>();
const subscription = await bus.consumeEvents({
  owner,
  prefetch: 256,
  onEvent: async (event) => waiting.get(event.jobId)?.(event),
});

const job = (script: string) =>
  create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: randomUUID(),
    attempt: 1,
    source: JobSource.MANUAL,
    owner,
    runsOn: "bench",
    timeoutSeconds: 600,
    workflowPath: "bench.yml",
    workflowJobId: "bench",
    jobName: "bench",
    repository: { fullName: "solstice/bench", url: "", commitSha: "", ref: "" },
    steps: [{ index: 0, name: "step", action: { case: "run", value: { script, shell: "sh -e {0}" } }, condition: "" }],
  });

try {
  // Jobs per second.
  const jobs = Array.from({ length: jobCount }, () => job("true"));
  let left = jobs.length;
  let failed = 0;
  const allDone = new Promise<void>((resolve) => {
    for (const j of jobs) {
      waiting.set(j.jobId, (event) => {
        if (event.body.case !== "jobFinished") return;
        if (event.body.value.result !== 1 && failed++ === 0)
          process.stderr.write(`first failure: ${event.body.value.reason}\n`);
        if (--left === 0) resolve();
      });
    }
  });
  const started = performance.now();
  await Promise.all(jobs.map((j) => bus.publishJob(j)));
  await allDone;
  const jobSeconds = (performance.now() - started) / 1000;

  // Log lines per second.
  const logJob = job(
    `i=0; while [ $i -lt ${lineCount} ]; do echo "line $i of the log throughput benchmark"; i=$((i+1)); done`,
  );
  let stepStartedAt = 0;
  let lastLineAt = 0;
  let lines = 0;
  const logDone = new Promise<void>((resolve) => {
    waiting.set(logJob.jobId, (event) => {
      if (event.body.case === "stepStarted") stepStartedAt = performance.now();
      if (event.body.case === "log" && event.body.value.stepIndex === 0) {
        for (const l of event.body.value.lines) if (l.text.startsWith("line ")) lines++;
        lastLineAt = performance.now();
      }
      if (event.body.case === "jobFinished") resolve();
    });
  });
  await bus.publishJob(logJob);
  await logDone;
  const lineSeconds = (lastLineAt - stepStartedAt) / 1000;

  const rows = [
    ["measure", "value", "detail"],
    [
      "jobs/s",
      (jobCount / jobSeconds).toFixed(1),
      `${jobCount} one-step jobs, capacity ${capacity}, ${jobSeconds.toFixed(1)} s, ${failed} not succeeded`,
    ],
    [
      "lines/s",
      (lines / lineSeconds).toFixed(0),
      `${lines} of ${lineCount} lines in ${lineSeconds.toFixed(2)} s, step start → last line at the owner`,
    ],
  ];
  for (const r of rows) process.stdout.write(`${(r[0] ?? "").padEnd(9)}${(r[1] ?? "").padStart(10)}   ${r[2]}\n`);
} finally {
  await orchestrator.stop(0);
  await subscription.stop();
  await bus.deleteNamespace();
  await bus.close();
  await closeStore();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query(`drop schema if exists "${schema}" cascade`);
  await client.end();
}
