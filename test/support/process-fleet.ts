import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Bus, connectBus } from "@solstice/bus";
import { createPgJobStore, type JobStore, migrate } from "@solstice/db";
import type { JobEvent, JobRequest } from "@solstice/protocol";
import { pino } from "pino";
import { projectRoot } from "./ciadm.ts";
import { AMQP_URL, DATABASE_URL, dropSchema } from "./fleet.ts";
import { duplicateKeys } from "./json-keys.ts";

const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });

/** One orchestrator as its own OS process (`services/orchestrator/src/main.ts`), as operators run it. */
export interface HostProcess {
  readonly id: string;
  readonly child: ChildProcess;
  readonly runRoot: string;
  /** Its pino log lines, parsed. */
  readonly logs: Record<string, unknown>[];
  /** Log lines with a key twice (JSON.parse keeps one of them, so `logs` cannot show it). */
  readonly duplicateKeyLines: string[];
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  readonly exited: Promise<number | string>;
  /** Waits until a log line matches. */
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<void>;
}

/**
 * A fleet of orchestrator processes on one isolated namespace and schema, and the test as the
 * jobs' owner, collecting each job's events. `close()` stops the hosts and removes everything.
 */
export interface ProcessFleet {
  readonly namespace: string;
  readonly schema: string;
  readonly bus: Bus;
  readonly store: JobStore;
  readonly owner: string;
  /** What ciadm needs to reach this fleet. */
  readonly ciadmEnv: Record<string, string>;
  startHost(id: string, capacity: string, env?: Record<string, string>): Promise<HostProcess>;
  /** Events of a job so far, in arrival order. */
  eventsOf(jobId: string): JobEvent[];
  /** Resolves with a job's events once an event matching `until` (default JobFinished) arrived. */
  waitFor(jobId: string, timeoutMs: number, until?: (e: JobEvent) => boolean): Promise<JobEvent[]>;
  close(): Promise<void>;
}

export async function startProcessFleet(): Promise<ProcessFleet> {
  const id = randomUUID().slice(0, 8);
  const namespace = `test-${id}`;
  const schema = `test_${id}`;
  const owner = `owner-${id}`;
  const fleetKeys = `ktest:${randomBytes(32).toString("base64")}`;
  await migrate({ databaseUrl: DATABASE_URL, schema, log });
  const { store, close: closeStore } = createPgJobStore({ databaseUrl: DATABASE_URL, schema, log });
  const bus = await connectBus({ url: AMQP_URL, namespace, log });
  await bus.declareTopology();
  const hosts: HostProcess[] = [];
  // Label queues are declared by the host processes; the test's bus must know them to delete them.
  const labels = new Set<string>();
  const events = new Map<string, JobEvent[]>();
  const waiters = new Set<() => void>();
  const subscription = await bus.consumeEvents({
    owner,
    onEvent: async (event) => {
      const list = events.get(event.jobId) ?? [];
      list.push(event);
      events.set(event.jobId, list);
      for (const wake of waiters) wake();
    },
  });
  const ciadmEnv = {
    SOLSTICE_AMQP_URL: AMQP_URL,
    SOLSTICE_DATABASE_URL: DATABASE_URL,
    SOLSTICE_DATABASE_SCHEMA: schema,
    SOLSTICE_NAMESPACE: namespace,
  };

  return {
    namespace,
    schema,
    bus,
    store,
    owner,
    ciadmEnv,
    async startHost(hostId, capacity, env = {}) {
      const runRoot = await mkdtemp(path.join(tmpdir(), "solstice-vms-"));
      for (const pair of capacity.split(",")) labels.add(pair.split("=")[0] ?? "");
      const child = spawn(process.execPath, ["--import", "tsx", "services/orchestrator/src/main.ts"], {
        cwd: projectRoot,
        env: {
          ...process.env,
          ...ciadmEnv,
          SOLSTICE_HOST_ID: hostId,
          SOLSTICE_CAPACITY: capacity,
          SOLSTICE_RUN_DIR: runRoot,
          // Beside the run directory, not in it: the reaper and the tests read the run directory
          // as the VMs' own.
          SOLSTICE_JOB_CACHE_DIR: `${runRoot}-job-cache`,
          SOLSTICE_ACCELERATOR: "tcg",
          SOLSTICE_HEARTBEAT_INTERVAL_MS: "1000",
          SOLSTICE_FLEET_KEYS: fleetKeys,
          SOLSTICE_LOG_LEVEL: "info",
          SOLSTICE_METRICS_PORT: "0",
          ...env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const logs: Record<string, unknown>[] = [];
      const duplicateKeyLines: string[] = [];
      const listeners = new Set<() => void>();
      let buffered = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        buffered += chunk.toString("utf8");
        const lines = buffered.split("\n");
        buffered = lines.pop() ?? "";
        for (const line of lines) {
          if (duplicateKeys(line).length > 0) duplicateKeyLines.push(line);
          try {
            logs.push(JSON.parse(line) as Record<string, unknown>);
          } catch {
            logs.push({ msg: line });
          }
        }
        for (const wake of listeners) wake();
      });
      let stderr = "";
      child.stderr?.on("data", (chunk: Buffer) => {
        stderr = (stderr + chunk.toString("utf8")).slice(-4000);
      });
      const exited = new Promise<number | string>((resolve) => {
        child.on("exit", (code, signal) => {
          resolve(code ?? signal ?? "unknown");
          for (const wake of listeners) wake();
        });
      });
      const host: HostProcess = {
        id: hostId,
        child,
        runRoot,
        logs,
        duplicateKeyLines,
        exited,
        waitForLog(match, timeoutMs = 60_000) {
          return new Promise((resolve, reject) => {
            const check = () => {
              if (logs.some(match)) done(undefined);
              else if (child.exitCode !== null || child.signalCode !== null)
                done(new Error(`host ${hostId} exited (${child.exitCode ?? child.signalCode}): ${stderr}`));
            };
            const timer = setTimeout(
              () => done(new Error(`host ${hostId}: no such log line in ${timeoutMs} ms`)),
              timeoutMs,
            );
            const done = (error: Error | undefined) => {
              clearTimeout(timer);
              listeners.delete(check);
              if (error) reject(error);
              else resolve();
            };
            listeners.add(check);
            check();
          });
        },
      };
      hosts.push(host);
      await host.waitForLog((l) => l.msg === "orchestrator ready", 60_000);
      return host;
    },
    eventsOf: (jobId) => events.get(jobId) ?? [],
    waitFor(jobId, timeoutMs, until = (e) => e.body.case === "jobFinished") {
      return new Promise((resolve, reject) => {
        const check = () => {
          const list = events.get(jobId) ?? [];
          if (list.some(until)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(list);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`job ${jobId}: awaited event did not come in ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const host of hosts) {
        if (host.child.exitCode === null && host.child.signalCode === null) host.child.kill("SIGKILL");
        await host.exited;
        await rm(host.runRoot, { recursive: true, force: true });
        await rm(`${host.runRoot}-job-cache`, { recursive: true, force: true });
      }
      await subscription.stop();
      for (const label of labels) await bus.ensureLabelQueue(label);
      await bus.deleteNamespace();
      await bus.close();
      await closeStore();
      await dropSchema(schema);
    },
  };
}

/** When a host held each job: from its Accepted event to its JobFinished, by host. */
export function hostIntervals(fleet: ProcessFleet, jobs: JobRequest[]): Map<string, [number, number][]> {
  const byHost = new Map<string, [number, number][]>();
  for (const job of jobs) {
    const events = fleet.eventsOf(job.jobId);
    const accepted = events.find((e) => e.body.case === "accepted");
    const finished = events.find((e) => e.body.case === "jobFinished");
    if (accepted?.body.case !== "accepted" || !accepted.time || !finished?.time) continue;
    const list = byHost.get(accepted.body.value.host) ?? [];
    list.push([timeMs(accepted.time), timeMs(finished.time)]);
    byHost.set(accepted.body.value.host, list);
  }
  return byHost;
}

/** The most intervals that overlap at any instant. */
export function maxOverlap(intervals: [number, number][]): number {
  const edges = intervals.flatMap(([a, b]) => [
    [a, 1],
    [b, -1],
  ]);
  // An end and a start at the same instant do not overlap: ends first.
  edges.sort((x, y) => (x[0] ?? 0) - (y[0] ?? 0) || (x[1] ?? 0) - (y[1] ?? 0));
  let now = 0;
  let max = 0;
  for (const [, delta] of edges) {
    now += delta ?? 0;
    max = Math.max(max, now);
  }
  return max;
}

function timeMs(t: { seconds: bigint; nanos: number }): number {
  return Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}
