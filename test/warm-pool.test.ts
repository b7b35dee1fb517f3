import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { attachWarmVm, JobEventStream, runJob } from "@solstice/executor";
import { type JobEvent, LogStream, Outcome } from "@solstice/protocol";
import { createQemuBackend, reapOrphans } from "@solstice/vm";
import { pino } from "pino";
import { leftovers, liveVmCount, startTestFleet, type TestFleet, tinyJob } from "./support/fleet.ts";
import { startProcessFleet } from "./support/process-fleet.ts";

// Warm pools on tiny guests under TCG. At most two guests of this file run at once: the fleet
// below has two slots, and the pool's VM holds one of them.

const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

const systemLines = (events: JobEvent[]) =>
  events.flatMap((e) =>
    e.body.case === "log" ? e.body.value.lines.filter((l) => l.stream === LogStream.SYSTEM).map((l) => l.text) : [],
  );
const stdoutLines = (events: JobEvent[]) =>
  events.flatMap((e) =>
    e.body.case === "log" ? e.body.value.lines.filter((l) => l.stream === LogStream.STDOUT).map((l) => l.text) : [],
  );
const resultOf = (events: JobEvent[]) => {
  const last = events.find((e) => e.body.case === "jobFinished");
  return last?.body.case === "jobFinished" ? last.body.value.result : undefined;
};
const startedWarm = (events: JobEvent[]) => systemLines(events).some((l) => l.includes("warm VM from the pool"));
const startedCold = (events: JobEvent[]) => systemLines(events).some((l) => l.includes("Booting a fresh VM"));

describe("a warm pool of 1 on a host with 2 tiny slots (TCG)", { timeout: 900_000 }, () => {
  let fleet: TestFleet;
  const peak = { slots: 0, dirs: 0, qemu: 0 };
  let sampler: NodeJS.Timeout | undefined;
  const poolOf = () => fleet.orchestrator.warmPool.sizes().tiny ?? { idle: 0, booting: 0, memoryMiB: 0 };
  const metric = async (name: string) => {
    const text = await fleet.metrics.registry.getSingleMetricAsString(name);
    return Number(/\{label="tiny"\} (\d+)/.exec(text)?.[1] ?? 0);
  };

  before(async () => {
    fleet = await startTestFleet("tiny=2", { env: { SOLSTICE_WARM_POOL: "tiny=1" } });
    // Every VM of the host, pooled or running a job, against the capacity of 2, all along.
    sampler = setInterval(() => {
      peak.slots = Math.max(peak.slots, fleet.orchestrator.slots.inUse().total);
      void leftovers(fleet.runRoot).then(({ dirs }) => {
        peak.dirs = Math.max(peak.dirs, dirs.length);
      });
      void liveVmCount(fleet.runRoot).then((live) => {
        peak.qemu = Math.max(peak.qemu, live);
      });
    }, 100);
  });
  after(async () => {
    clearInterval(sampler);
    await fleet?.close();
  });

  test("the pool boots one VM ahead of any job, in one of the host's slots", async () => {
    // One snapshot of the pool: between two reads the consumer may hold the idle VM as a claim
    // while it looks at the queue (and give it back when the queue is empty).
    let idle = poolOf();
    await until(() => {
      idle = poolOf();
      return idle.idle === 1;
    }, "the pooled VM to be idle");
    assert.equal(idle.memoryMiB, 512, "the idle VM's memory is counted");
    const { dirs } = await leftovers(fleet.runRoot);
    assert.equal(dirs.length, 1);
    assert.match(dirs[0] ?? "", /^pool-tiny-/);
    assert.equal(fleet.orchestrator.slots.inUse().total, 1);
  });

  test("a job runs on the pooled VM (a hit), says so, finds its clock right, and the pool refills with a new VM", async () => {
    const [pooledDir] = (await leftovers(fleet.runRoot)).dirs;
    const events = await fleet.runToEnd(tinyJob(fleet.owner, [{ name: "clock", run: "echo now=$(date +%s)" }]));
    assert.equal(resultOf(events), Outcome.SUCCESS, systemLines(events).join("\n"));
    assert.ok(startedWarm(events), systemLines(events).join("\n"));
    assert.ok(!startedCold(events));
    const now = Number(/now=(\d+)/.exec(stdoutLines(events).join("\n"))?.[1]);
    assert.ok(Math.abs(now - Date.now() / 1000) < 10, `guest clock ${now}`);
    assert.equal(await metric("solstice_warm_pool_hits_total"), 1);
    assert.equal(await metric("solstice_warm_pool_misses_total"), 0);
    await until(() => poolOf().idle === 1, "the pool to refill");
    const { dirs } = await leftovers(fleet.runRoot);
    assert.equal(dirs.length, 1);
    assert.notEqual(dirs[0], pooledDir, "the used VM was destroyed, not put back");
  });

  test("two jobs at once: one runs on the pooled VM, the other boots a fresh one, both succeed", async () => {
    // Each job keeps its VM a few seconds, so the warm one is still alive while the cold one's QEMU
    // starts even on a loaded machine: the sampler must see both at once (the last test).
    const jobs = [1, 2].map((n) => tinyJob(fleet.owner, [{ name: "hello", run: `echo job-${n}; sleep 5` }]));
    const [a, b] = await Promise.all(jobs.map((job) => fleet.runToEnd(job)));
    assert.ok(a && b);
    assert.equal(resultOf(a), Outcome.SUCCESS, systemLines(a).join("\n"));
    assert.equal(resultOf(b), Outcome.SUCCESS, systemLines(b).join("\n"));
    assert.deepEqual([a, b].map(startedWarm).sort(), [false, true]);
    assert.deepEqual([a, b].map(startedCold).sort(), [false, true]);
    assert.deepEqual(stdoutLines(a), ["job-1"]);
    assert.deepEqual(stdoutLines(b), ["job-2"]);
    assert.equal(await metric("solstice_warm_pool_hits_total"), 2);
    assert.equal(await metric("solstice_warm_pool_misses_total"), 1);
  });

  test("pooled VMs and jobs together never held more than the host's 2 slots", () => {
    assert.ok(peak.slots > 0 && peak.slots <= 2, `slots in use peaked at ${peak.slots}`);
    assert.ok(peak.dirs <= 2, `run directories peaked at ${peak.dirs}`);
    // At least the two jobs' VMs were seen at once, so the sampler does see them.
    assert.ok(peak.qemu === 2, `live VMs (QEMU with its run directory) peaked at ${peak.qemu}`);
  });

  test("drain destroys the idle pooled VM and nothing refills until undrain", async () => {
    await until(() => poolOf().idle === 1, "the pool to refill");
    await fleet.orchestrator.drain();
    assert.deepEqual(poolOf(), { idle: 0, booting: 0, memoryMiB: 0 });
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] });
    assert.equal(fleet.orchestrator.slots.inUse().total, 0);
    await sleep(1_500);
    assert.equal(poolOf().booting + poolOf().idle, 0, "no refill while draining");
    await fleet.orchestrator.undrain();
    await until(() => poolOf().idle === 1, "the pool to refill after undrain");
  });

  test("stopping the orchestrator leaves no VM and no run directory", async () => {
    assert.equal(poolOf().idle, 1);
    await fleet.orchestrator.stop(0);
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] });
    assert.deepEqual(fleet.orchestrator.slots.inUse().total, 0);
  });
});

test("a warm VM whose clock drifted while it waited gets the host's time before its first step", {
  timeout: 300_000,
}, async () => {
  const runRoot = await mkdtemp(path.join(tmpdir(), "solstice-vms-"));
  try {
    const backend = createQemuBackend({ log, accelerator: "tcg", runRoot });
    const image = await backend.ensureImage("tiny");
    const vm = await backend.boot({ vmName: "pool-clock", image, pooled: true, log });
    // As the pool does: a session kept open and the guest's basics learned on it.
    const warm = await attachWarmVm(vm);
    await warm.session.exec("date -u -s @1000000000 >/dev/null"); // September 2001
    const job = tinyJob("clock", [{ name: "clock", run: "echo now=$(date +%s)" }]);
    const events: JobEvent[] = [];
    const stream = new JobEventStream(job.jobId, job.attempt, async (event) => {
      events.push(event);
    });
    const result = await runJob({
      job,
      backend,
      events: stream,
      signal: new AbortController().signal,
      log,
      warm,
    });
    assert.equal(result.result, Outcome.SUCCESS, result.reason);
    assert.ok(startedWarm(events));
    const now = Number(/now=(\d+)/.exec(stdoutLines(events).join("\n"))?.[1]);
    assert.ok(Math.abs(now - Date.now() / 1000) < 10, `guest clock ${now}, host ${Math.round(Date.now() / 1000)}`);
    assert.deepEqual(await readdir(runRoot), [], "the job destroyed the warm VM");
  } finally {
    await rm(runRoot, { recursive: true, force: true });
  }
});

test("a pooled VM left by a crashed orchestrator is found and removed by the reaper", {
  timeout: 300_000,
}, async () => {
  const fleet = await startProcessFleet();
  try {
    const host = await fleet.startHost("pool-crash", "tiny=1", { SOLSTICE_WARM_POOL: "tiny=1" });
    await host.waitForLog((l) => l.msg === "warm VM ready", 180_000);
    const before = await readdir(host.runRoot);
    assert.equal(before.length, 1);
    assert.match(before[0] ?? "", /^pool-tiny-/);
    host.child.kill("SIGKILL");
    await host.exited;
    // Its QEMU dies with it (parent-death signal); the run directory stays for the reaper.
    await until(async () => (await leftovers(host.runRoot)).qemu.length === 0, "QEMU to die", 10_000);
    assert.deepEqual(await readdir(host.runRoot), before);
    assert.equal(await reapOrphans(host.runRoot, log), 1);
    assert.deepEqual(await leftovers(host.runRoot), { dirs: [], qemu: [] });
  } finally {
    await fleet.close();
  }
});
