import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Bus, connectBus } from "@solstice/bus";
import { loadConfig, orchestratorConfigSchema } from "@solstice/config";
import { createPgJobStore, type JobStore, migrate } from "@solstice/db";
import {
  createOrchestratorMetrics,
  type Orchestrator,
  type OrchestratorMetrics,
  startHostJobCache,
  startOrchestrator,
} from "@solstice/orchestrator";
import {
  create,
  type FleetKeyring,
  type JobEvent,
  type JobRequest,
  JobRequestSchema,
  JobSource,
  SCHEMA_VERSION,
} from "@solstice/protocol";
import { createQemuBackend } from "@solstice/vm";
import pg from "pg";
import { type Logger, pino } from "pino";
import { assertStartedInMode, logLines, RESTORES_SNAPSHOTS, START_MODE, TEST_LABEL } from "./start-mode.ts";

export const AMQP_URL = process.env.SOLSTICE_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
export const DATABASE_URL = process.env.SOLSTICE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * One isolated fleet for a test: its own exchange/queue namespace, PostgreSQL schema and VM run
 * directory, an orchestrator serving `capacity`, and an owner that collects every job's events.
 * `close()` removes all of it.
 */
export interface TestFleet {
  readonly bus: Bus;
  readonly store: JobStore;
  readonly orchestrator: Orchestrator;
  /** The orchestrator's Prometheus series. */
  readonly metrics: OrchestratorMetrics;
  readonly owner: string;
  readonly runRoot: string;
  readonly namespace: string;
  /** The job cache's loopback port, when the fleet was started with `jobCache`. */
  readonly jobCachePort: number | undefined;
  /** Publishes a job and resolves with its events, in arrival order, once JobFinished arrives. */
  runToEnd(job: JobRequest, timeoutMs?: number): Promise<JobEvent[]>;
  close(): Promise<void>;
}

const defaultLog = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });

export interface TestFleetOptions {
  /** Unseals the jobs' secrets in the orchestrator. */
  readonly keyring?: FleetKeyring;
  /** The services' logger (default: silent, or SOLSTICE_TEST_LOG's level). */
  readonly log?: Logger;
  /** More SOLSTICE_* settings for the orchestrator. */
  readonly env?: Record<string, string>;
  /** The broker (default AMQP_URL, the machine's); a fault test passes its private one. */
  readonly amqpUrl?: string;
  /** Start the host's job cache as the orchestrator's main does (entries under the run directory). */
  readonly jobCache?: boolean;
}

/**
 * An orchestrator on this machine's RabbitMQ, PostgreSQL and QEMU, in a namespace and schema of
 * its own. Under SOLSTICE_TEST_START_MODE (support/start-mode.ts) the `tiny` label of `capacity`
 * becomes the mode's label, `warm` gives it a warm pool of 1, and `runToEnd` checks each job that
 * ran a step started in the mode (in `warm`, after waiting for an idle pooled VM).
 */
export async function startTestFleet(capacity = "tiny=2", options: TestFleetOptions = {}): Promise<TestFleet> {
  const log = options.log ?? defaultLog;
  const id = randomUUID().slice(0, 8);
  const namespace = `test-${id}`;
  const schema = `test_${id}`;
  const owner = `owner-${id}`;
  const runRoot = await mkdtemp(path.join(tmpdir(), "solstice-vms-"));
  const config = loadConfig("orchestrator", orchestratorConfigSchema, {
    SOLSTICE_AMQP_URL: options.amqpUrl ?? AMQP_URL,
    SOLSTICE_DATABASE_URL: DATABASE_URL,
    SOLSTICE_DATABASE_SCHEMA: schema,
    SOLSTICE_NAMESPACE: namespace,
    SOLSTICE_HOST_ID: `host-${id}`,
    SOLSTICE_CAPACITY: capacity.replace(/\btiny=/, `${TEST_LABEL}=`),
    ...(START_MODE === "warm" ? { SOLSTICE_WARM_POOL: `${TEST_LABEL}=1` } : {}),
    SOLSTICE_RUN_DIR: runRoot,
    SOLSTICE_HEARTBEAT_INTERVAL_MS: "1000",
    ...options.env,
  });
  await migrate({ databaseUrl: DATABASE_URL, schema, log });
  const { store, close: closeStore } = createPgJobStore({ databaseUrl: DATABASE_URL, schema, log });
  const bus = await connectBus({ url: options.amqpUrl ?? AMQP_URL, namespace, log });
  const jobCache = options.jobCache
    ? await startHostJobCache({ ...config, jobCacheDir: `${runRoot}-job-cache` }, log)
    : undefined;
  const backend = createQemuBackend({
    log,
    accelerator: "tcg",
    runRoot,
    snapshots: RESTORES_SNAPSHOTS,
    ...(jobCache ? { hostPorts: [jobCache.port] } : {}),
  });
  const metrics = createOrchestratorMetrics({
    bus,
    capacity: config.capacity,
    running: () => orchestrator.running,
    warmPool: () => orchestrator.warmPool.sizes(),
    log,
  });
  const orchestrator = await startOrchestrator({
    config,
    bus,
    store,
    backend,
    accelerator: "tcg",
    log,
    metrics,
    ...(options.keyring ? { keyring: options.keyring } : {}),
    ...(jobCache ? { jobCache: jobCache.access } : {}),
  });

  const waiting = new Map<string, { events: JobEvent[]; done: (events: JobEvent[]) => void }>();
  const events = await bus.consumeEvents({
    owner,
    onEvent: async (event) => {
      const entry = waiting.get(event.jobId);
      if (!entry) return;
      entry.events.push(event);
      if (event.body.case === "jobFinished") entry.done(entry.events);
    },
  });

  return {
    bus,
    store,
    orchestrator,
    metrics,
    owner,
    runRoot,
    namespace,
    jobCachePort: jobCache?.port,
    async runToEnd(job, timeoutMs = 180_000) {
      if (START_MODE === "warm" && orchestrator.warmPool.sizes()[job.runsOn] !== undefined) {
        await waitForIdleWarmVm(orchestrator, job.runsOn);
      }
      const finished = new Promise<JobEvent[]>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`job ${job.jobId} did not finish in ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiting.set(job.jobId, {
          events: [],
          done: (all) => {
            clearTimeout(timer);
            resolve(all);
          },
        });
      });
      await bus.publishJob(job);
      const all = await finished;
      if (all.some((event) => event.body.case === "stepStarted")) assertStartedInMode(logLines(all));
      return all;
    },
    async close() {
      await orchestrator.stop(0);
      await jobCache?.close();
      await events.stop();
      await bus.deleteNamespace();
      await bus.close();
      await closeStore();
      await dropSchema(schema);
      await rm(runRoot, { recursive: true, force: true });
      await rm(`${runRoot}-job-cache`, { recursive: true, force: true });
    },
  };
}

/** Waits until `label`'s warm pool has an idle VM, so the next job is a pool hit. */
async function waitForIdleWarmVm(orchestrator: Orchestrator, label: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((orchestrator.warmPool.sizes()[label]?.idle ?? 0) < 1) {
    if (Date.now() > deadline) throw new Error(`no idle warm VM of ${label} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Waits until the store records the job's first step as running (its VM booted, its script started). */
export async function waitForFirstStepRunning(store: JobStore, jobId: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await store.getJob(jobId))?.steps[0]?.state !== "running") {
    if (Date.now() > deadline) throw new Error(`job ${jobId}: its first step did not start in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Removes a test's PostgreSQL schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}

/** A job for the tiny guest with the given `run` steps. */
export function tinyJob(
  owner: string,
  steps: { name: string; run: string; continueOnError?: boolean; timeoutSeconds?: number; condition?: string }[],
  overrides: { runsOn?: string; timeoutSeconds?: number; attempt?: number } = {},
): JobRequest {
  return create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: randomUUID(),
    attempt: 1,
    source: JobSource.MANUAL,
    owner,
    runsOn: TEST_LABEL,
    timeoutSeconds: 600,
    workflowPath: "test.yml",
    workflowJobId: "test",
    jobName: "test",
    repository: { fullName: "solstice/test", url: "", commitSha: "", ref: "" },
    steps: steps.map((s, index) => ({
      index,
      name: s.name,
      action: { case: "run" as const, value: { script: s.run, shell: "bash -e {0}" } },
      continueOnError: s.continueOnError ?? false,
      timeoutSeconds: s.timeoutSeconds ?? 0,
      condition: s.condition ?? "",
    })),
    ...overrides,
  });
}

/**
 * How many VMs live under a run root at one moment: QEMU processes whose run directory still
 * exists. A /proc scan is not atomic (a VM that exits during it and one that starts after it can
 * both be seen), but a VM's directory exists from before its QEMU starts until after it exits, so
 * reading the directories after the scan drops the ones that were going.
 */
export async function liveVmCount(runRoot: string): Promise<number> {
  const qemuDirs = new Set<string>();
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (!cmdline.includes("qemu-system")) continue;
    const dir = cmdline.split(`${runRoot}/`)[1]?.split("/")[0];
    if (dir) qemuDirs.add(dir);
  }
  const dirs = new Set(await readdir(runRoot).catch(() => []));
  return [...qemuDirs].filter((d) => dirs.has(d)).length;
}

/** Whether any VM or qemu process is left under a run root. */
export async function leftovers(runRoot: string): Promise<{ dirs: string[]; qemu: string[] }> {
  const dirs = await readdir(runRoot).catch(() => []);
  const qemu: string[] = [];
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes("qemu-system") && cmdline.includes(runRoot)) qemu.push(pid);
  }
  return { dirs, qemu };
}
