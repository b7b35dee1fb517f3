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
 *   CPU       — during the burst, CPU milliseconds per job (utime + stime from /proc) of the
 *               broker's nodes, the hosts' processes, their PostgreSQL backends (by
 *               application_name) and the owner: gross (all they spent while the burst ran) and net
 *               of their idle rate (heartbeats), measured just before; from the net total, the most
 *               jobs/s this machine's cores could dispatch; and how busy the whole machine was.
 * Usage: corepack pnpm bench:fleet [--hosts 10,50,200] [--taking poll,reserve] [--procs 4]
 *   [--amqp URL,URL,URL] (default: scripts/rabbitmq-cluster.sh's three nodes, started if needed)
 *   [--rounds N] (each figure the median of N rounds) [--idle-s 10] [--steady-s 10] [--rate 40]
 *   [--job-ms 500] [--burst 1000] [--lease-ms 5000] (the killed host's) [--heartbeat-ms 5000] (the
 *   fleet's hosts', the default of a real host; their lease is 12 heartbeats, as by default)
 *   [--baseline DIR] (also run hosts, and the owner's bus, from another checkout, e.g.
 *     `git worktree add /tmp/base main` then `corepack pnpm install --offline` there: its rows say
 *     "(baseline)", old beside new)
 *   [--cpu-prof DIR] (the hosts' processes write V8 CPU profiles there)
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { availableParallelism, loadavg } from "node:os";
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
import {
  backendSecondsBetween,
  brokerUsage,
  machineSeconds,
  postgresBackendSeconds,
  processesSeconds,
} from "./cpu-usage.ts";
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
    "heartbeat-ms": { type: "string", default: "5000" },
    "cpu-prof": { type: "string" },
    baseline: { type: "string" },
    rounds: { type: "string", default: "1" },
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
const rounds = Number(values.rounds);
const leaseMs = Number(values["lease-ms"]);
// The victims' heartbeat, so a 5 s lease sees three missed; the fleet's hosts beat at a real host's
// pace, so their background (a database write per host and beat) does not swamp the jobs' cost.
const victimHeartbeatMs = Math.max(200, Math.floor(leaseMs / 5));
const fleetHeartbeatMs = Number(values["heartbeat-ms"]);
const clusterScript = new URL("../scripts/rabbitmq-cluster.sh", import.meta.url).pathname;
const amqpUrl = values.amqp ?? execFileSync("bash", [clusterScript, "urls", "3"]).toString().trim();
if (!values.amqp) execFileSync("bash", [clusterScript, "start", "3"], { stdio: "inherit" });
const databaseUrl = process.env.SOLSTICE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const log = pino({ level: process.env.SOLSTICE_BENCH_LOG ?? "silent" });
const runId = randomUUID().slice(0, 8);
const schema = `bench_fleet_${runId}`;
const owner = `bench-${runId}`;

const clusterDir = process.env.SOLSTICE_CLUSTER_DIR ?? "/tmp/solstice-rabbit-cluster";
const baseline = values.baseline;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a process of hosts from this checkout, or from `checkout` (the baseline) when given. */
function startHosts(spec: HostsSpec, checkout?: string): Promise<ChildProcess> {
  const script = checkout ? `${checkout}/bench/fleet-hosts.ts` : new URL("./fleet-hosts.ts", import.meta.url).pathname;
  const child = fork(script, [JSON.stringify(spec)], {
    ...(checkout ? { cwd: checkout } : {}),
    execArgv: [
      "--import",
      "tsx",
      ...(values["cpu-prof"] ? ["--cpu-prof", `--cpu-prof-dir=${values["cpu-prof"]}`] : []),
    ],
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

interface CpuByPart {
  broker: number;
  hosts: number;
  postgres: number;
  owner: number;
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
  /**
   * CPU milliseconds per burst job (all spent while the burst ran): the broker's nodes, the hosts'
   * processes, their PostgreSQL backends, the owner (this process).
   */
  cpuMsPerJob: CpuByPart;
  /** The same, less each part's idle rate (heartbeats) over the burst's length: the jobs' own cost. */
  netMsPerJob: CpuByPart;
  /** The whole machine's busy cores during the burst (all its processes, other users' too). */
  machineCores: number;
}

/** `--baseline`'s rows are marked, so old and new read side by side. */
let roundCounter = 0;
const takingName = (taking: string, checkout: string | undefined) => (checkout ? `${taking} (baseline)` : taking);

async function measure(hosts: number, taking: "poll" | "reserve", monitor: pg.Client, checkout?: string): Promise<Row> {
  const name = takingName(taking, checkout);
  const tag = `${hosts}-${taking}${checkout ? "-base" : ""}-${(roundCounter++).toString()}`;
  const namespace = `bench-fleet-${runId}-${tag}`;
  // The owner's bus comes from the same checkout as the hosts, so a baseline row is the old code
  // on both ends of the broker (how the owner acks is part of what the broker spends).
  const ownerConnect: typeof connectBus = checkout
    ? ((await import(`${checkout}/packages/bus/src/index.ts`)) as { connectBus: typeof connectBus }).connectBus
    : connectBus;
  const bus = await ownerConnect({ url: amqpUrl, namespace, log, clientName: "bench-owner" });
  const tracker = new Tracker();
  const children: ChildProcess[] = [];
  const victims: ChildProcess[] = [];
  try {
    await bus.declareTopology();
    for (const label of [...LABELS, "victim"]) await bus.ensureLabelQueue(label);
    const events = await bus.consumeEvents({ owner, prefetch: 512, onEvent: async (e) => tracker.onEvent(e) });
    // Named, so the burst can count the CPU of this run's PostgreSQL backends apart from others'.
    const hostsDatabaseUrl = `${databaseUrl}${databaseUrl.includes("?") ? "&" : "?"}application_name=${namespace}`;
    const base = {
      amqpUrl,
      databaseUrl: hostsDatabaseUrl,
      schema,
      namespace,
      taking,
      jobMs,
      leaseMs: 12 * fleetHeartbeatMs,
      heartbeatMs: fleetHeartbeatMs,
    };
    const ids = Array.from({ length: hosts }, (_, i) => `h${String(i).padStart(3, "0")}-${tag}`);
    const groups = Array.from({ length: Math.min(procs, hosts) }, (_, p) => ids.filter((_, i) => i % procs === p));
    children.push(
      ...(await Promise.all(
        groups.map((hostIds) =>
          startHosts({ ...base, hostIds, capacity: LABELS.map((l) => `${l}=1`).join(",") }, checkout),
        ),
      )),
    );
    process.stderr.write(`fleet: ${hosts} hosts (${name}) ready\n`);

    // Idle.
    await sleep(3_000);
    const hostPids = children.map((c) => c.pid);
    const before = brokerUsage(clusterDir);
    const clientBefore = processesSeconds(hostPids);
    const postgresBefore = await postgresBackendSeconds(monitor, namespace);
    const ownerBefore = process.cpuUsage();
    const idleStart = performance.now();
    await sleep(idleMs);
    // The owner's first: reading the others' CPU (a walk through /proc) is the bench's, not its.
    const ownerIdle = process.cpuUsage(ownerBefore);
    const seconds = (performance.now() - idleStart) / 1000;
    const after = brokerUsage(clusterDir);
    const idleCores = (after.seconds - before.seconds) / seconds;
    const clientCores = (processesSeconds(hostPids) - clientBefore) / seconds;
    // Each part's idle rate in cores, subtracted from its burst CPU below.
    const idleRate = {
      broker: idleCores,
      hosts: clientCores,
      postgres: backendSecondsBetween(postgresBefore, await postgresBackendSeconds(monitor, namespace)) / seconds,
      owner: (ownerIdle.user + ownerIdle.system) / 1e6 / seconds,
    };

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
    const cpuBefore = {
      broker: brokerUsage(clusterDir).seconds,
      hosts: processesSeconds(hostPids),
      postgres: await postgresBackendSeconds(monitor, namespace),
      owner: process.cpuUsage(),
      machine: machineSeconds(),
    };
    const burstStart = performance.now();
    await Promise.all(burstJobs.map((job) => tracker.publish(bus, job)));
    const burstIds = burstJobs.map((j) => j.jobId);
    await tracker.allFinished(burstIds, 600_000);
    const ownerCpu = process.cpuUsage(cpuBefore.owner);
    const machine = machineSeconds();
    // All the CPU each part spent while the burst ran, heartbeats included (the idle columns give
    // their rate): subtracting an idle rate measured apart went below zero on a busy machine.
    const perJob = (cpuSeconds: number) => (cpuSeconds * 1000) / burst;
    const cpuMsPerJob = {
      broker: perJob(brokerUsage(clusterDir).seconds - cpuBefore.broker),
      hosts: perJob(processesSeconds(hostPids) - cpuBefore.hosts),
      postgres: perJob(backendSecondsBetween(cpuBefore.postgres, await postgresBackendSeconds(monitor, namespace))),
      owner: perJob((ownerCpu.user + ownerCpu.system) / 1e6),
    };
    const burstSeconds = (performance.now() - burstStart) / 1000;
    const netMsPerJob = {
      broker: cpuMsPerJob.broker - perJob(idleRate.broker * burstSeconds),
      hosts: cpuMsPerJob.hosts - perJob(idleRate.hosts * burstSeconds),
      postgres: cpuMsPerJob.postgres - perJob(idleRate.postgres * burstSeconds),
      owner: cpuMsPerJob.owner - perJob(idleRate.owner * burstSeconds),
    };
    const machineCores =
      ((machine.busy - cpuBefore.machine.busy) / (machine.total - cpuBefore.machine.total)) * availableParallelism();
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
    const victimBase = { ...base, capacity: "victim=1", jobMs: 600_000, leaseMs, heartbeatMs: victimHeartbeatMs };
    victims.push(await startHosts({ ...victimBase, hostIds: [`victim-a-${tag}`] }, checkout));
    victims.push(await startHosts({ ...victimBase, hostIds: [`victim-b-${tag}`] }, checkout));
    const retryMs = await killedHostRetry(bus, tracker, victims);

    await events.stop();
    return {
      hosts,
      taking: name,
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
      cpuMsPerJob,
      netMsPerJob,
      machineCores,
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

/** One row per (hosts, taking): the median of each figure over the rounds (strings from the median round by jobs/s). */
function medianRows(rounds: readonly Row[]): Row[] {
  const groups = new Map<string, Row[]>();
  for (const row of rounds) {
    const key = `${row.hosts}|${row.taking}`;
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  return [...groups.values()].map((rows) => {
    const m = (pick: (r: Row) => number) => median(rows.map(pick));
    const middle = [...rows].sort((a, b) => a.jobsPerSecond - b.jobsPerSecond)[Math.floor(rows.length / 2)] as Row;
    return {
      ...middle,
      idleCores: m((r) => r.idleCores),
      idleRssMiB: m((r) => r.idleRssMiB),
      clientCores: m((r) => r.clientCores),
      steadyP50: m((r) => r.steadyP50),
      steadyP99: m((r) => r.steadyP99),
      burstP50: m((r) => r.burstP50),
      burstP99: m((r) => r.burstP99),
      jobsPerSecond: m((r) => r.jobsPerSecond),
      retryMs: m((r) => r.retryMs),
      cpuMsPerJob: medianCpu(rows.map((r) => r.cpuMsPerJob)),
      netMsPerJob: medianCpu(rows.map((r) => r.netMsPerJob)),
      machineCores: m((r) => r.machineCores),
    };
  });
}

function medianCpu(samples: readonly CpuByPart[]): CpuByPart {
  const m = (pick: (c: CpuByPart) => number) => median(samples.map(pick));
  return {
    broker: m((c) => c.broker),
    hosts: m((c) => c.hosts),
    postgres: m((c) => c.postgres),
    owner: m((c) => c.owner),
  };
}

const cpuTotal = (c: CpuByPart) => c.broker + c.hosts + c.postgres + c.owner;
const cpuCells = (c: CpuByPart) =>
  [c.broker, c.hosts, c.postgres, c.owner, cpuTotal(c)].map((x) => x.toFixed(1)).join("/");

const loadAverage = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");

async function main() {
  await migrate({ databaseUrl, schema, log });
  const monitor = new pg.Client({ connectionString: databaseUrl });
  await monitor.connect();
  const loadBefore = loadAverage();
  const measured: Row[] = [];
  const failed: string[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const hosts of hostCounts) {
        for (const taking of takings) {
          // Old and new take turns being first, so a machine growing busier favours neither.
          const checkouts = baseline ? (round % 2 === 0 ? [baseline, undefined] : [undefined, baseline]) : [undefined];
          for (const checkout of checkouts) {
            // One size failing (a busy machine timing out 400 hosts' start) leaves the others' rows.
            try {
              measured.push(await measure(hosts, taking, monitor, checkout));
            } catch (error) {
              const what = `${hosts} hosts, ${takingName(taking, checkout)}`;
              failed.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
              process.stderr.write(`fleet: ${what} failed: ${String(error)}\n`);
            }
          }
        }
      }
    }
  } finally {
    await monitor.query(`drop schema if exists "${schema}" cascade`);
    await monitor.end();
  }
  const rows = medianRows(measured);
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
        "burst CPU ms/job broker/hosts/PostgreSQL/owner/total",
        "net of idle",
        `most jobs/s on ${availableParallelism()} cores (net)`,
        "burst machine busy cores",
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
        cpuCells(r.cpuMsPerJob),
        cpuCells(r.netMsPerJob),
        ((availableParallelism() * 1000) / cpuTotal(r.netMsPerJob)).toFixed(0),
        r.machineCores.toFixed(2),
      ]),
    ),
  );
  process.stdout.write(
    `\n${rate} jobs/s steady for ${steadyMs / 1000} s, ${burst} at once, each job ${jobMs} ms, 4 labels × 1 slot per host, hosts' heartbeat ${fleetHeartbeatMs} ms, killed host's lease ${leaseMs} ms, broker ${amqpUrl.split(",").length} node(s), ${rounds} round(s) (medians), load average ${loadBefore} before and ${loadAverage()} after${baseline ? `, baseline hosts from ${baseline}` : ""}\n${failed.map((f) => `not measured: ${f}\n`).join("")}`,
  );
}

await main();
