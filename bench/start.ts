/**
 * Start benchmark: how long a job waits for its VM, per image and start mode, through the real
 * orchestrator, RabbitMQ, PostgreSQL and qemu backend of this machine, in one run:
 *   job → first output — from the job message arriving at the orchestrator (its acceptance write
 *         begins) to the first output line of the job's first step at the owner; median and p95;
 *   raw boot — QEMU started by hand to ready, the same image (bench/raw-boot.ts);
 *   our path — medians of each piece of ours on the way: the database write, Accepted published
 *         with a confirm, the VM (boot, or warm hand-over), SSH handshake and guest preparation,
 *         step start to its first line (the step's one command: files, pre-flight, run), and that
 *         line to the owner;
 *   and, on an idle VM outside any job: the SSH handshake in JS, one exec, one step command to its
 *   first line, and (for comparison: no longer on the step path) SFTP uploads.
 * Start modes are the entries of `startModes`; `restore` (a saved booted-and-idle guest restored
 * per job) runs only for images with `snapshot` in images.yaml (tiny-fast, with --fast).
 * --arches adds the tiny guests of the other architectures (tiny-arm64, tiny-riscv64, and
 * tiny-arm64-fast, which restores), which a host of another architecture emulates (TCG); with
 * --debian also debian-12-arm64 and debian-13-riscv64.
 * --images names the labels instead (comma-separated), for one image's rows.
 * Usage: corepack pnpm bench:start [--runs 10] [--debian] [--fast] [--arches] [--images a,b]
 *        [--modes cold,warm,restore,restore-tcp,restore-aslr] [--accelerator auto|kvm|tcg]
 * `restore-aslr` restores guests that keep address randomization under TCG (decision 0012), and
 * under TCG the SSH costs are measured on a guest with it too, beside the default.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { type Bus, connectBus } from "@solstice/bus";
import { loadConfig, orchestratorConfigSchema } from "@solstice/config";
import { createPgJobStore, type JobStore, migrate } from "@solstice/db";
import type { LocalImage } from "@solstice/images";
import { type Orchestrator, startOrchestrator } from "@solstice/orchestrator";
import {
  create,
  type JobEvent,
  JobRequestSchema,
  JobSource,
  LogStream,
  SCHEMA_VERSION,
  timestampDate,
} from "@solstice/protocol";
import { connectSsh, type GuestSession, SshError } from "@solstice/ssh";
import { type AgentChannel, createQemuBackend } from "@solstice/vm";
import pg from "pg";
import { pino } from "pino";
import { rawBoot } from "./raw-boot.ts";
import { formatTable, median, percentile, seconds } from "./summary-table.ts";

/** One way a job can get its VM. */
interface StartMode {
  readonly name: string;
  /** Whether the backend restores images that have a snapshot (only the restore modes do). */
  readonly snapshots?: boolean;
  /**
   * What the key agent serves the job on its channel (decision 0010; default "commands"): "ssh"
   * an SSH session there, "none" nothing (the session connects over TCP to port 22); the
   * alternatives, measured side by side.
   */
  readonly agentChannel?: AgentChannel;
  /**
   * true: guests under TCG keep their processes' address randomization (the backend option of that
   * name, decision 0012); the alternative to the default (off), measured side by side.
   */
  readonly tcgAddressRandomization?: boolean;
  /** Whether the mode applies to this image at all (default: every image). */
  appliesTo?(image: LocalImage): boolean;
  /** SOLSTICE_* settings of the orchestrator that serves `label` in this mode. */
  env(label: string): Record<string, string>;
  /** Resolves once a job published now would start in this mode. */
  ready(orchestrator: Orchestrator, label: string): Promise<void>;
  /** Whether a job's system lines show it started in this mode (a run that did not is an error). */
  startedAs(systemLines: readonly string[]): boolean;
}

/** A start mode that restores images with a snapshot; `variant` is what it changes to compare. */
function restoreMode(
  name: string,
  variant: Pick<StartMode, "agentChannel" | "tcgAddressRandomization"> = {},
): StartMode {
  return {
    name,
    snapshots: true,
    ...variant,
    appliesTo: (image) => image.snapshot === true,
    env: () => ({}),
    ready: async () => {},
    startedAs: (lines) => lines.some((l) => l.includes("restored from a snapshot")),
  };
}

const startModes: readonly StartMode[] = [
  {
    name: "cold",
    env: () => ({}),
    ready: async () => {},
    startedAs: (lines) =>
      lines.some((l) => l.startsWith("Booting a fresh VM")) &&
      !lines.some((l) => l.includes("restored from a snapshot")),
  },
  restoreMode("restore"),
  restoreMode("restore-ssh", { agentChannel: "ssh" }),
  restoreMode("restore-tcp", { agentChannel: "none" }),
  restoreMode("restore-aslr", { tcgAddressRandomization: true }),
  {
    name: "warm",
    env: (label) => ({ SOLSTICE_WARM_POOL: `${label}=1` }),
    ready: (orchestrator, label) =>
      waitFor(() => (orchestrator.warmPool.sizes()[label]?.idle ?? 0) >= 1, "an idle pooled VM", 600_000),
    startedAs: (lines) => lines.some((l) => l.includes("warm VM from the pool")),
  },
];

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    debian: { type: "boolean", default: false },
    fast: { type: "boolean", default: false },
    arches: { type: "boolean", default: false },
    images: { type: "string" },
    modes: {
      type: "string",
      default: startModes
        .map((m) => m.name)
        .filter((m) => m !== "restore-tcp" && m !== "restore-aslr")
        .join(","),
    },
    accelerator: { type: "string", default: "auto" },
  },
});
const runs = Number(values.runs);
const accelerator = values.accelerator as "auto" | "kvm" | "tcg";
const images = values.images?.split(",") ?? [
  "tiny",
  ...(values.fast ? ["tiny-fast"] : []),
  ...(values.debian ? ["debian-12"] : []),
  ...(values.arches ? ["tiny-arm64", "tiny-riscv64", "tiny-arm64-fast"] : []),
  ...(values.arches && values.debian ? ["debian-12-arm64", "debian-13-riscv64"] : []),
];
// An empty list (`--modes ""`) runs no jobs: only the table of SSH costs on an idle VM.
const modes = values.modes
  .split(",")
  .filter(Boolean)
  .map((name) => {
    const mode = startModes.find((m) => m.name === name);
    if (!mode) throw new Error(`unknown start mode "${name}"; known: ${startModes.map((m) => m.name).join(", ")}`);
    return mode;
  });
const amqpUrl = process.env.SOLSTICE_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const databaseUrl = process.env.SOLSTICE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/** The backend's "VM ready" marks (ms since QEMU's preparation began) of the runs being counted. */
const vmMarks: Record<string, number>[] = [];
let keepMarks = false;
const logLevel = process.env.SOLSTICE_BENCH_LOG ?? "warn";
const stderrLevel = pino.levels.values[logLevel] ?? 40;
// Info records are read for the VM's own marks; only those at the chosen level reach stderr.
const log = pino(
  { level: "info" },
  {
    write(line: string) {
      const record = JSON.parse(line) as { level: number; msg?: string; phases?: Record<string, number> };
      if (record.msg === "VM ready" && record.phases && keepMarks) vmMarks.push(record.phases);
      if (record.level >= stderrLevel) process.stderr.write(line);
    },
  },
);

async function waitFor(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** The times one job leaves behind, all on this machine's clock (ms since the epoch). */
interface JobTimes {
  dbStart?: number;
  dbEnd?: number;
  acceptedStart?: number;
  acceptedEnd?: number;
  vmLine?: number;
  stepStarted?: number;
  firstLine?: number;
  firstSeen?: number;
  systemLines: string[];
  finished?: (ok: boolean, reason: string) => void;
}

/** Failed jobs run again per image and mode before the benchmark gives up. */
const MAX_FAILED_RUNS = 3;

const PHASES = [
  ["database write (job row → running)", (t: JobTimes) => (t.dbEnd ?? 0) - (t.dbStart ?? 0)],
  ["Accepted published, broker confirm", (t: JobTimes) => (t.acceptedEnd ?? 0) - (t.acceptedStart ?? 0)],
  ["VM: boot, or warm VM taken", (t: JobTimes) => (t.vmLine ?? 0) - (t.acceptedEnd ?? 0)],
  ["SSH handshake + guest preparation", (t: JobTimes) => (t.stepStarted ?? 0) - (t.vmLine ?? 0)],
  [
    "step start → first line (one command: files, pre-flight, run)",
    (t: JobTimes) => (t.firstLine ?? 0) - (t.stepStarted ?? 0),
  ],
  ["first line → owner (batching, publish)", (t: JobTimes) => (t.firstSeen ?? 0) - (t.firstLine ?? 0)],
] as const;

const id = randomUUID().slice(0, 8);
const namespace = `bench-${id}`;
const schema = `bench_${id}`;
const owner = `bench-${id}`;
const runRoot = await mkdtemp(path.join(tmpdir(), "solstice-bench-"));
const times = new Map<string, JobTimes>();
const timesOf = (jobId: string) => {
  let entry = times.get(jobId);
  if (!entry) {
    entry = { systemLines: [] };
    times.set(jobId, entry);
  }
  return entry;
};

await migrate({ databaseUrl, schema, log });
const { store, close: closeStore } = createPgJobStore({ databaseUrl, schema, log });
const bus = await connectBus({ url: amqpUrl, namespace, log });
// Cold boots boot even images that have a snapshot; only the restore mode restores them.
const backend = createQemuBackend({ log, runRoot, accelerator, snapshots: false });
const restoringBackend = createQemuBackend({ log, runRoot, accelerator });
const restoringOverSsh = createQemuBackend({ log, runRoot, accelerator, agentChannel: "ssh" });
const restoringOverTcp = createQemuBackend({ log, runRoot, accelerator, agentChannel: "none" });
const restoringWithAslr = createQemuBackend({ log, runRoot, accelerator, tcgAddressRandomization: true });
const bootingWithAslr = createQemuBackend({
  log,
  runRoot,
  accelerator,
  snapshots: false,
  tcgAddressRandomization: true,
});
const subscription = await bus.consumeEvents({ owner, onEvent: async (event) => observe(event) });

function observe(event: JobEvent): void {
  const t = timesOf(event.jobId);
  const body = event.body;
  if (body.case === "stepStarted" && event.time) t.stepStarted ??= timestampDate(event.time).getTime();
  if (body.case === "log") {
    for (const line of body.value.lines) {
      const at = line.time ? timestampDate(line.time).getTime() : Date.now();
      if (line.stream === LogStream.SYSTEM) {
        t.systemLines.push(line.text);
        if (/^(VM ready|Using a warm VM)/.test(line.text)) t.vmLine ??= at;
      } else if (line.stream === LogStream.STDOUT && t.firstLine === undefined) {
        t.firstLine = at;
        t.firstSeen = Date.now();
      }
    }
  }
  if (body.case === "jobFinished") t.finished?.(body.value.result === 1, body.value.reason);
}

/** The store and bus the orchestrator gets: the real ones, timing the two writes of an acceptance. */
const unchanged = <T extends object>(target: T, prop: string | symbol): unknown => {
  const value: unknown = Reflect.get(target, prop, target);
  return typeof value === "function" ? value.bind(target) : value;
};
const timedStore = new Proxy(store, {
  get(target, prop) {
    if (prop !== "markRunning") return unchanged(target, prop);
    return async (...args: Parameters<JobStore["markRunning"]>) => {
      const t = timesOf(args[0]);
      t.dbStart = Date.now();
      const claimed = await target.markRunning(...args);
      t.dbEnd = Date.now();
      return claimed;
    };
  },
});
const timedBus = new Proxy(bus, {
  get(target, prop) {
    if (prop !== "publishEvent") return unchanged(target, prop);
    return async (...args: Parameters<Bus["publishEvent"]>) => {
      const [event] = args;
      if (event.body.case !== "accepted") return target.publishEvent(...args);
      const t = timesOf(event.jobId);
      t.acceptedStart = Date.now();
      await target.publishEvent(...args);
      t.acceptedEnd = Date.now();
    };
  },
});

async function startHost(label: string, mode: StartMode): Promise<Orchestrator> {
  const config = loadConfig("orchestrator", orchestratorConfigSchema, {
    SOLSTICE_AMQP_URL: amqpUrl,
    SOLSTICE_DATABASE_URL: databaseUrl,
    SOLSTICE_DATABASE_SCHEMA: schema,
    SOLSTICE_NAMESPACE: namespace,
    SOLSTICE_HOST_ID: `bench-${mode.name}-${id}`,
    SOLSTICE_CAPACITY: `${label}=1`,
    SOLSTICE_RUN_DIR: runRoot,
    SOLSTICE_ACCELERATOR: accelerator,
    ...mode.env(label),
  });
  return startOrchestrator({
    config,
    bus: timedBus,
    store: timedStore,
    backend: !mode.snapshots
      ? backend
      : mode.agentChannel === "none"
        ? restoringOverTcp
        : mode.agentChannel === "ssh"
          ? restoringOverSsh
          : mode.tcgAddressRandomization
            ? restoringWithAslr
            : restoringBackend,
    accelerator,
    log,
  });
}

/** Publishes a one-step job and resolves with its times once it finished. */
async function runOne(label: string): Promise<JobTimes> {
  const job = create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: randomUUID(),
    attempt: 1,
    source: JobSource.MANUAL,
    owner,
    runsOn: label,
    timeoutSeconds: 900,
    workflowPath: "bench.yml",
    workflowJobId: "start",
    jobName: "start",
    repository: { fullName: "solstice/bench", url: "", commitSha: "", ref: "" },
    steps: [
      { index: 0, name: "first", action: { case: "run", value: { script: "echo first-output", shell: "sh -e {0}" } } },
    ],
  });
  const t = timesOf(job.jobId);
  const finished = new Promise<void>((resolve, reject) => {
    t.finished = (ok, reason) => (ok ? resolve() : reject(new Error(`bench job failed: ${reason}`)));
  });
  await bus.publishJob(job);
  await finished;
  return t;
}

const EXEC_FORKS = "processes one exec (`true`) starts (count, not seconds)";
const STEP_FORKS = "processes one step command starts (count, not seconds)";
/** Prints the guest kernel's count of processes forked since boot, with shell builtins only. */
const FORK_COUNT = 'while read -r k v _; do [ "$k" = processes ] && echo "$v"; done < /proc/stat';

/**
 * Processes the guest forked for `action` (a Linux guest's /proc/stat count, read before and after
 * with builtins only; the second read's own exec channel, one process, is taken off).
 */
async function forksOf(session: GuestSession, action: () => Promise<unknown>): Promise<number> {
  const count = async () => {
    let value = Number.NaN;
    await session.exec(FORK_COUNT, { onStdout: (line) => (value = Number(line)) });
    return value;
  };
  const before = await count();
  await action();
  return (await count()) - before - 1;
}

/** On an idle VM outside any job: the SSH handshake in JS, one exec, one step command, and SFTP uploads. */
async function sshCosts(label: string, booting = backend): Promise<Record<string, number[]>> {
  const image = await booting.ensureImage(label);
  const vm = await booting.boot({ vmName: `bench-ssh-${label}`, image, pooled: true, log });
  const costs: Record<string, number[]> = {
    "SSH handshake in JS (connect, kex, auth)": [],
    "one exec round trip (`true`)": [],
    "one step command to its first line (`runScript`, bash)": [],
    "first SFTP upload of a session (subsystem start + write)": [],
    "next SFTP upload on the same session": [],
    [EXEC_FORKS]: [],
    [STEP_FORKS]: [],
  };
  const time = async (name: string, action: () => Promise<unknown>) => {
    const started = performance.now();
    await action();
    costs[name]?.push(performance.now() - started);
  };
  try {
    await sleep(2_000); // let the guest finish starting up
    let sftp = true;
    for (let i = 0; i < runs; i++) {
      let session: Awaited<ReturnType<typeof connectSsh>> | undefined;
      await time("SSH handshake in JS (connect, kex, auth)", async () => {
        session = await connectSsh(vm.ssh);
      });
      if (!session) throw new Error("no session");
      const s = session;
      await time("one exec round trip (`true`)", () => s.exec("true"));
      // To its first line, not to its end: what a job's first step costs before output flows.
      const stepStarted = performance.now();
      let firstLineMs = 0;
      await s.runScript({
        script: "echo hi\n",
        shell: "bash -e {0}",
        env: { A: "b" },
        onLine: () => {
          firstLineMs ||= performance.now() - stepStarted;
        },
      });
      costs["one step command to its first line (`runScript`, bash)"]?.push(firstLineMs);
      // Counted work, which the machine's load does not change: processes each one starts.
      costs[EXEC_FORKS]?.push(await forksOf(s, () => s.exec("true")));
      costs[STEP_FORKS]?.push(
        await forksOf(s, () =>
          s.runScript({ script: "echo hi\n", shell: "bash -e {0}", env: { A: "b" }, onLine: () => {} }),
        ),
      );
      // Guests without an SFTP server (debian-12-fast ships none; steps do not use it) leave these rows empty.
      if (sftp) {
        try {
          await time("first SFTP upload of a session (subsystem start + write)", () =>
            s.upload("/tmp/bench-a.sh", "echo a\n", 0o700),
          );
          await time("next SFTP upload on the same session", () => s.upload("/tmp/bench-b.sh", "echo b\n", 0o700));
        } catch (error) {
          if (!(error instanceof SshError) || error.code !== "upload_failed") throw error;
          sftp = false;
        }
      }
      s.close();
    }
  } finally {
    await vm.destroy();
  }
  return costs;
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
process.stderr.write(`load average at start: ${load()}\n`);
if ((loadavg()[0] ?? 0) > 1.5)
  process.stderr.write("warning: the machine is busy (1-min load > 1.5); figures will be slow\n");

const summary: string[][] = [];
const phaseRows: string[][] = [];
const vmRows: string[][] = [];
/** Raw restores per "label mode", for the rows of modes that restore. */
const rawByMode = new Map<string, number[]>();

/** `runs` raw QEMU starts (a failed one is reported and run again, a few times). */
async function rawRuns(label: string, what: string, start: () => Promise<number>): Promise<number[]> {
  const samples: number[] = [];
  let failed = 0;
  for (let i = 0; i < runs; i++) {
    let ms: number;
    try {
      ms = await start();
    } catch (error) {
      if (++failed > MAX_FAILED_RUNS) throw error;
      process.stderr.write(`${label} ${what} failed, starting again: ${String(error)}\n`);
      i--;
      continue;
    }
    samples.push(ms);
    process.stderr.write(`${label} ${what} ${i + 1}/${runs}: ${seconds(ms)} s\n`);
  }
  return samples;
}

/** The VM piece's own marks, as medians of the time between them (seconds). */
const VM_MARKS = [
  ["overlay, keys (prepared)", "prepared", undefined],
  ["QEMU launched in its namespace", "launched", "prepared"],
  ["state loaded, resumed (restore)", "resumed", "launched"],
  ["agent answered: SSH server runs with the keys", "agent", "resumed|launched"],
  ["SSH session on the agent's channel authenticated", "session", "agent"],
] as const;

function vmMarkColumns(marks: readonly Record<string, number>[]): string[] {
  return VM_MARKS.map(([, mark, from]) => {
    const samples = marks.flatMap((m) => {
      const at = m[mark];
      if (at === undefined) return [];
      const since =
        from === undefined
          ? 0
          : (from
              .split("|")
              .map((f) => m[f])
              .find((v) => v !== undefined) ?? 0);
      return [at - since];
    });
    return samples.length ? seconds(median(samples), 3) : "—";
  });
}
const sshRows: string[][] = [];
try {
  for (const label of images) {
    const image = await backend.ensureImage(label);
    let acceleratorUsed = "?";
    for (const mode of modes) {
      if (mode.appliesTo && !mode.appliesTo(image)) continue;
      const orchestrator = await startHost(label, mode);
      const totals: number[] = [];
      let failed = 0;
      const phases: number[][] = PHASES.map(() => []);
      vmMarks.length = 0;
      try {
        // One run first, not counted: page cache, accelerator probe, the pool's first boot.
        for (let i = -1; i < runs; i++) {
          await waitFor(() => orchestrator.running.size === 0, "finished job", 900_000);
          await mode.ready(orchestrator, label);
          keepMarks = i >= 0;
          let t: JobTimes;
          try {
            t = await runOne(label);
          } catch (error) {
            // A failed job says nothing about start times: it is reported and run again, a few times.
            if (++failed > MAX_FAILED_RUNS) throw error;
            process.stderr.write(`${label} ${mode.name}: a run failed, running it again: ${String(error)}\n`);
            i--;
            continue;
          }
          if (!mode.startedAs(t.systemLines)) {
            throw new Error(`a ${mode.name} run did not start as ${mode.name}:\n${t.systemLines.join("\n")}`);
          }
          acceleratorUsed = /accelerator: (\w+)/.exec(t.systemLines.join("\n"))?.[1] ?? acceleratorUsed;
          if (i < 0) continue;
          const total = (t.firstSeen ?? 0) - (t.dbStart ?? 0);
          totals.push(total);
          for (const [p, [, of]] of PHASES.entries()) phases[p]?.push(of(t));
          process.stderr.write(`${label} ${mode.name} run ${i + 1}/${runs}: ${seconds(total)} s\n`);
        }
      } finally {
        await orchestrator.stop(0);
      }
      keepMarks = false;
      const modeName = failed > 0 ? `${mode.name} (${failed} failed run(s) run again)` : mode.name;
      summary.push([label, modeName, acceleratorUsed, seconds(median(totals)), seconds(percentile(totals, 95))]);
      if (mode.name !== "warm") vmRows.push([`${label} ${modeName}`, ...vmMarkColumns(vmMarks)]);
      // Side by side with this mode's totals: a raw QEMU restore of the same saved state.
      if (mode.snapshots) {
        const state = await (mode.tcgAddressRandomization ? restoringWithAslr : restoringBackend).savedState(image);
        if (state === undefined) throw new Error(`${label} has no saved state to restore raw`);
        const rawRestores = await rawRuns(label, "raw restore", () =>
          rawBoot(image, acceleratorUsed === "kvm" ? "kvm" : "tcg", {
            restoreFrom: state,
            ...(mode.agentChannel ? { agentChannel: mode.agentChannel } : {}),
            ...(mode.tcgAddressRandomization ? { tcgAddressRandomization: true } : {}),
          }),
        );
        rawByMode.set(`${label} ${mode.name}`, rawRestores);
      }
      phaseRows.push([
        `${label} ${modeName}`,
        ...phases.map((samples) => seconds(median(samples), 3)),
        seconds(median(totals)),
      ]);
    }
    const raw =
      modes.length === 0
        ? []
        : await rawRuns(label, "raw boot", () => rawBoot(image, acceleratorUsed === "kvm" ? "kvm" : "tcg"));
    for (const row of summary.filter((r) => r[0] === label)) {
      // A restore is set against a raw restore, cold and warm against a raw boot.
      const rawOfRow = rawByMode.get(`${label} ${row[1]?.split(" ")[0]}`) ?? raw;
      const kind = rawOfRow === raw ? "boot" : "restore";
      const ours = Number(row[3]) * 1000;
      row.push(kind, seconds(median(rawOfRow)), seconds(percentile(rawOfRow, 95)), seconds(ours - median(rawOfRow)));
    }
    // Under TCG, beside the default (no address randomization in the guest), with it (decision 0012).
    const variants: [string, typeof backend][] =
      acceleratorUsed === "kvm"
        ? [[label, backend]]
        : [
            [label, backend],
            [`${label} (ASLR)`, bootingWithAslr],
          ];
    for (const [row, booting] of variants) {
      const costs = await sshCosts(label, booting);
      for (const [name, samples] of Object.entries(costs)) {
        const counted = name === EXEC_FORKS || name === STEP_FORKS;
        const show = (value: number) => (samples.length === 0 ? "—" : counted ? String(value) : seconds(value));
        sshRows.push([row, name, show(median(samples)), show(percentile(samples, 95))]);
      }
    }
  }
} finally {
  await subscription.stop();
  await bus.deleteNamespace();
  await bus.close();
  await closeStore();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query(`drop schema if exists "${schema}" cascade`);
  await client.end();
  await rm(runRoot, { recursive: true, force: true });
}

process.stderr.write(`load average at the end: ${load()}\n`);
process.stdout.write(
  `Job message at the orchestrator → first output line of the first step at the owner (${runs} runs, seconds)\n\n`,
);
process.stdout.write(
  formatTable(
    [
      "image",
      "start mode",
      "accel",
      "median",
      "p95",
      "raw QEMU (same run)",
      "raw → ready, median",
      "raw p95",
      "ours − raw (medians)",
    ],
    summary,
  ),
);
process.stdout.write("\nThe VM piece of a cold boot or restore, mark to mark (medians, seconds)\n\n");
process.stdout.write(formatTable(["run", ...VM_MARKS.map(([name]) => name)], vmRows));
process.stdout.write("\nOur path, piece by piece (medians, seconds)\n\n");
process.stdout.write(formatTable(["run", ...PHASES.map(([name]) => name), "total"], phaseRows));
process.stdout.write(`\nSSH on an idle VM, outside any job (${runs} runs, seconds)\n\n`);
process.stdout.write(formatTable(["image", "operation", "median", "p95"], sshRows));
