/**
 * The fleet at scale: N simulated orchestrator hosts (bench/fleet-hosts.ts, real orchestrator code
 * whose jobs boot nothing) on a RabbitMQ cluster on this machine, each serving 4 labels with one
 * slot each, measured with jobs taken by polling (`poll`, the old way) and by reservation
 * (`reserve`) side by side at each N:
 *   idle      — broker CPU (all nodes' beam.smp, utime+stime) and memory (RSS) with no jobs;
 *   steady    — publish → Accepted (at the owner) p50/p99 at `--rate` jobs/s of `--job-ms` each;
 *   burst     — `--burst` jobs published at once: publish → Accepted p50/p99, jobs/s from the
 *               first publish to the last JobFinished, and fairness (per label p99, per host
 *               jobs taken: min/max, hosts that took none);
 *   kill      — a host running a job is killed (SIGKILL); the owner's lease watch retries it:
 *               time from the kill to the retry's Accepted on another host.
 * Usage: corepack pnpm bench:fleet [--hosts 10,50,200] [--taking poll,reserve] [--procs 4]
 *   [--amqp URL,URL,URL] (default: scripts/rabbitmq-cluster.sh's three nodes, started if needed)
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type Bus, connectBus } from "@solstice/bus";
import { migrate } from "@solstice/db";
import { LeaseWatch } from "@solstice/executor";
import {
  ControlSchema,
  create,
  type JobEvent,
  type JobRequest,
  JobRequestSchema,
  JobSource,
  SCHEMA_VERSION,
} from "@solstice/protocol";
import pg from "pg";
import { pino } from "pino";
import type { HostsSpec } from "./fleet-hosts.ts";
import { formatTable, median, percentile } from "./summary-table.ts";

const { values } = parseArgs({
  options: {
    hosts: { type: "string", default: "10,50,200" },
    taking: { type: "string", default: "poll,reserve" },
    procs: { type: "string", default: "4" },
    amqp: { type: "string" },
    "idle-s": { type: "string", default: "10" },
    "steady-s": { type: "string", default: "10" },
    rate: { type: "string", default: "40" },
    "job-ms": { type: "string", default: "500" },
    burst: { type: "string", default: "1000" },
    "lease-ms": { type: "string", default: "5000" },
  },
});
const LABELS = ["l0", "l1", "l2", "l3"];
const hostCounts = (values.hosts ?? "").split(",").map(Number);
const takings = (values.taking ?? "").split(",") as Array<"poll" | "reserve">;
const procs = Number(values.procs);
const idleMs = Number(values["idle-s"]) * 1000;
const steadyMs = Number(values["steady-s"]) * 1000;
const rate = Number(values.rate);
const jobMs = Number(values["job-ms"]);
const burst = Number(values.burst);
const leaseMs = Number(values["lease-ms"]);
const heartbeatMs = Math.max(200, Math.floor(leaseMs / 5));
const clusterScript = new URL("../scripts/rabbitmq-cluster.sh", import.meta.url).pathname;
const amqpUrl = values.amqp ?? execFileSync("bash", [clusterScript, "urls", "3"]).toString().trim();
if (!values.amqp) execFileSync("bash", [clusterScript, "start", "3"], { stdio: "inherit" });
const databaseUrl = process.env.SOLSTICE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const log = pino({ level: process.env.SOLSTICE_BENCH_LOG ?? "silent" });
const runId = randomUUID().slice(0, 8);
const schema = `bench_fleet_${runId}`;
const owner = `bench-${runId}`;

const clusterDir = process.env.SOLSTICE_CLUSTER_DIR ?? "/tmp/solstice-rabbit-cluster";

/** CPU ticks (utime + stime) and RSS of the broker's nodes: every beam.smp of the cluster script. */
function brokerUsage(): { ticks: number; rssKiB: number } {
  let ticks = 0;
  let rssKiB = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmdline.includes("beam.smp") || !cmdline.includes(clusterDir)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
      rssKiB += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      // A process that ended while we looked.
    }
  }
  return { ticks, rssKiB };
}

function processTicks(children: readonly ChildProcess[]): number {
  let ticks = 0;
  for (const child of children) {
    try {
      const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // Gone.
    }
  }
  return ticks;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function startHosts(spec: HostsSpec): Promise<ChildProcess> {
  const child = fork(new URL("./fleet-hosts.ts", import.meta.url).pathname, [JSON.stringify(spec)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    child.once("message", () => resolve(child));
    child.once("exit", (code) => reject(new Error(`a hosts process exited with ${code} before it was ready`)));
  });
}

async function stopHosts(children: readonly ChildProcess[]) {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.send({ stop: true });
          setTimeout(() => child.kill("SIGKILL"), 30_000).unref();
        }),
    ),
  );
}

function makeJob(label: string): JobRequest {
  return create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: randomUUID(),
    attempt: 1,
    source: JobSource.MANUAL,
    owner,
    runsOn: label,
    timeoutSeconds: 600,
    workflowPath: "bench.yml",
    workflowJobId: "bench",
    jobName: "bench",
    repository: { fullName: "solstice/bench", url: "", commitSha: "", ref: "" },
  });
}

/** The owner's view of jobs it published: when each was published, accepted (by whom), finished. */
class Tracker {
  readonly published = new Map<string, { at: number; label: string }>();
  readonly accepted = new Map<string, { ms: number; host: string; label: string }>();
  readonly finished = new Map<string, number>();
  readonly listeners = new Map<string, (event: JobEvent) => void>();
  private waiters: Array<() => void> = [];

  onEvent(event: JobEvent) {
    const now = performance.now();
    this.listeners.get(event.jobId)?.(event);
    const sent = this.published.get(event.jobId);
    if (!sent) return;
    if (event.body.case === "accepted" && !this.accepted.has(event.jobId)) {
      this.accepted.set(event.jobId, { ms: now - sent.at, host: event.body.value.host, label: sent.label });
    }
    if (event.body.case === "jobFinished" && !this.finished.has(event.jobId)) {
      this.finished.set(event.jobId, now);
      for (const wake of this.waiters) wake();
    }
  }

  async publish(bus: Bus, job: JobRequest) {
    this.published.set(job.jobId, { at: performance.now(), label: job.runsOn });
    await bus.publishJob(job);
  }

  async allFinished(ids: readonly string[], timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    while (ids.some((id) => !this.finished.has(id))) {
      if (Date.now() > deadline)
        throw new Error(`${ids.filter((id) => !this.finished.has(id)).length} jobs never finished`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 500);
      });
      this.waiters = [];
    }
  }

  latencies(ids: readonly string[]) {
    return ids.map((id) => this.accepted.get(id)?.ms ?? Number.NaN).filter((ms) => !Number.isNaN(ms));
  }
}

interface Row {
  hosts: number;
  taking: string;
  idleCores: number;
  idleRssMiB: number;
  clientCores: number;
  steadyP50: number;
  steadyP99: number;
  burstP50: number;
  burstP99: number;
  jobsPerSecond: number;
  labelP99: string;
  perHost: string;
  retryMs: number;
}

async function measure(hosts: number, taking: "poll" | "reserve"): Promise<Row> {
  const namespace = `bench-fleet-${runId}-${hosts}-${taking}`;
  const bus = await connectBus({ url: amqpUrl, namespace, log, clientName: "bench-owner" });
  const tracker = new Tracker();
  const children: ChildProcess[] = [];
  const victims: ChildProcess[] = [];
  try {
    await bus.declareTopology();
    for (const label of [...LABELS, "victim"]) await bus.ensureLabelQueue(label);
    const events = await bus.consumeEvents({ owner, prefetch: 512, onEvent: async (e) => tracker.onEvent(e) });
    const base = { amqpUrl, databaseUrl, schema, namespace, taking, jobMs, leaseMs, heartbeatMs };
    const ids = Array.from({ length: hosts }, (_, i) => `h${String(i).padStart(3, "0")}-${taking}`);
    const groups = Array.from({ length: Math.min(procs, hosts) }, (_, p) => ids.filter((_, i) => i % procs === p));
    children.push(
      ...(await Promise.all(
        groups.map((hostIds) => startHosts({ ...base, hostIds, capacity: LABELS.map((l) => `${l}=1`).join(",") })),
      )),
    );
    process.stderr.write(`fleet: ${hosts} hosts (${taking}) ready\n`);

    // Idle.
    await sleep(3_000);
    const before = brokerUsage();
    const clientBefore = processTicks(children);
    const idleStart = performance.now();
    await sleep(idleMs);
    const seconds = (performance.now() - idleStart) / 1000;
    const after = brokerUsage();
    const idleCores = (after.ticks - before.ticks) / 100 / seconds;
    const clientCores = (processTicks(children) - clientBefore) / 100 / seconds;

    // Steady rate.
    const steadyIds: string[] = [];
    const steadyEnd = performance.now() + steadyMs;
    for (let i = 0; performance.now() < steadyEnd; i++) {
      const job = makeJob(LABELS[i % LABELS.length] as string);
      steadyIds.push(job.jobId);
      void tracker.publish(bus, job);
      await sleep(1000 / rate);
    }
    await tracker.allFinished(steadyIds, 120_000);
    const steady = tracker.latencies(steadyIds);

    // Burst.
    const burstJobs = Array.from({ length: burst }, (_, i) => makeJob(LABELS[i % LABELS.length] as string));
    const burstStart = performance.now();
    await Promise.all(burstJobs.map((job) => tracker.publish(bus, job)));
    const burstIds = burstJobs.map((j) => j.jobId);
    await tracker.allFinished(burstIds, 600_000);
    const lastFinished = Math.max(...burstIds.map((id) => tracker.finished.get(id) ?? 0));
    const jobsPerSecond = burst / ((lastFinished - burstStart) / 1000);
    const burstLatencies = tracker.latencies(burstIds);
    const byLabel = LABELS.map((label) =>
      percentile(
        burstIds
          .filter((id) => tracker.accepted.get(id)?.label === label)
          .map((id) => tracker.accepted.get(id)?.ms ?? 0),
        99,
      ),
    );
    const taken = new Map(ids.map((id) => [id, 0]));
    for (const id of burstIds) {
      const host = tracker.accepted.get(id)?.host;
      if (host) taken.set(host, (taken.get(host) ?? 0) + 1);
    }
    const counts = [...taken.values()];

    // A killed host: two victim hosts in processes of their own serve label "victim".
    const victimBase = { ...base, capacity: "victim=1", jobMs: 600_000 };
    victims.push(await startHosts({ ...victimBase, hostIds: [`victim-a-${taking}`] }));
    victims.push(await startHosts({ ...victimBase, hostIds: [`victim-b-${taking}`] }));
    const retryMs = await killedHostRetry(bus, tracker, victims);

    await events.stop();
    return {
      hosts,
      taking,
      idleCores,
      idleRssMiB: after.rssKiB / 1024,
      clientCores,
      steadyP50: median(steady),
      steadyP99: percentile(steady, 99),
      burstP50: median(burstLatencies),
      burstP99: percentile(burstLatencies, 99),
      jobsPerSecond,
      labelP99: byLabel.map((ms) => ms.toFixed(0)).join("/"),
      perHost: `${Math.min(...counts)}–${Math.max(...counts)}, ${counts.filter((c) => c === 0).length} idle`,
      retryMs,
    };
  } finally {
    await stopHosts([...children, ...victims]);
    await bus.deleteNamespace();
    await bus.close();
  }
}

/** Publishes a long job under a lease watch, kills the host that accepts it, times the retry. */
async function killedHostRetry(bus: Bus, tracker: Tracker, victims: readonly ChildProcess[]): Promise<number> {
  const job = makeJob("victim");
  let killedAt = 0;
  const retried = new Promise<number>((resolve) => {
    const lease = new LeaseWatch({
      request: job,
      leaseMs,
      maxAttempts: 2,
      publish: (request) => bus.publishJob(request),
      cancel: (jobId, attempt, reason) =>
        bus.publishControl(
          create(ControlSchema, {
            schemaVersion: SCHEMA_VERSION,
            command: { case: "cancel", value: { jobId, attempt, reason } },
          }),
        ),
      onLost: () => undefined,
      log,
    });
    tracker.listeners.set(job.jobId, (event) => {
      if (!lease.observe(event) || event.body.case !== "accepted") return;
      if (event.attempt === 1) {
        const victim = event.body.value.host.startsWith("victim-a") ? victims[0] : victims[1];
        killedAt = performance.now();
        victim?.kill("SIGKILL");
      } else {
        lease.stop();
        resolve(performance.now() - killedAt);
      }
    });
    void lease.start();
  });
  return retried;
}

async function main() {
  await migrate({ databaseUrl, schema, log });
  const rows: Row[] = [];
  try {
    for (const hosts of hostCounts) {
      for (const taking of takings) rows.push(await measure(hosts, taking));
    }
  } finally {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query(`drop schema if exists "${schema}" cascade`);
    await client.end();
  }
  const ms = (x: number) => x.toFixed(0);
  process.stdout.write(
    formatTable(
      [
        "hosts",
        "taking",
        "idle broker cores",
        "broker RSS MiB",
        "idle host-process cores",
        "steady p50/p99 ms",
        "burst p50/p99 ms",
        "burst jobs/s",
        "burst p99 per label ms",
        "burst jobs per host (min–max)",
        "killed host → retry accepted s",
      ],
      rows.map((r) => [
        String(r.hosts),
        r.taking,
        r.idleCores.toFixed(2),
        r.idleRssMiB.toFixed(0),
        r.clientCores.toFixed(2),
        `${ms(r.steadyP50)}/${ms(r.steadyP99)}`,
        `${ms(r.burstP50)}/${ms(r.burstP99)}`,
        r.jobsPerSecond.toFixed(0),
        r.labelP99,
        r.perHost,
        (r.retryMs / 1000).toFixed(1),
      ]),
    ),
  );
  process.stdout.write(
    `\n${rate} jobs/s steady for ${steadyMs / 1000} s, ${burst} at once, each job ${jobMs} ms, 4 labels × 1 slot per host, lease ${leaseMs} ms, broker ${amqpUrl.split(",").length} node(s)\n`,
  );
}

await main();
