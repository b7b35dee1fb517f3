import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createSlotGate } from "@solstice/bus";
import type { LocalImage } from "@solstice/images";
import type { GuestSession } from "@solstice/ssh";
import type { Vm, VmBackend, VmSpec } from "@solstice/vm";
import { pino } from "pino";
import { JobSlots } from "../src/job-slots.ts";
import { WarmPool } from "../src/warm-pool.ts";

// The pool and the consumer's view of the slots, against a backend whose "VMs" are plain objects:
// the accounting, the order of claims and the backoff, without booting anything.

const log = pino({ level: "silent" });

interface FakeVm extends Vm {
  destroyed: boolean;
  /** Makes the VM stop on its own, as a crashed QEMU would. */
  crash(): void;
}

function fakeBackend(opts: { bootMs?: number; fail?: boolean } = {}) {
  const boots: { at: number; spec: VmSpec }[] = [];
  const vms: FakeVm[] = [];
  const backend: VmBackend = {
    name: "fake",
    async ensureImage(label: string): Promise<LocalImage> {
      return { label, defaultMemoryMiB: 256 } as LocalImage;
    },
    async boot(spec: VmSpec): Promise<Vm> {
      boots.push({ at: Date.now(), spec });
      await sleep(opts.bootMs ?? 5, undefined, spec.signal ? { signal: spec.signal } : {});
      if (opts.fail) throw new Error("the guest did not come up");
      let stop: () => void = () => {};
      const exited = new Promise<void>((resolve) => {
        stop = resolve;
      });
      const vm: FakeVm = {
        id: `vm-${boots.length}`,
        ssh: { host: "127.0.0.1", port: 1, username: "root", privateKey: "", hostKey: "" },
        console: Readable.from([]),
        accelerator: "tcg",
        bootMs: opts.bootMs ?? 5,
        exited,
        destroyed: false,
        crash: () => stop(),
        async destroy() {
          vm.destroyed = true;
          stop();
        },
      };
      vms.push(vm);
      return vm;
    },
    reapOrphans: async () => 0,
  };
  return { backend, boots, vms };
}

function setUp(opts: {
  capacity: Record<string, number>;
  total?: number;
  pool: Record<string, number>;
  backend?: ReturnType<typeof fakeBackend>;
  backoffMs?: number;
  refillQuietMs?: number;
  defers?: (label: string) => boolean;
}) {
  const fake = opts.backend ?? fakeBackend();
  const sessions: { vmId: string; open: boolean }[] = [];
  const total = opts.total ?? Object.values(opts.capacity).reduce((a, b) => a + b, 0);
  const slots = createSlotGate({ total, perLabel: opts.capacity });
  const pool = new WarmPool({
    targets: opts.pool,
    backend: fake.backend,
    slots,
    log,
    backoffMs: opts.backoffMs ?? 100,
    refillQuietMs: opts.refillQuietMs ?? 0,
    // Stands in for the SSH session a real pool keeps open to each idle VM, and what it learns.
    attach: async (vm) => {
      const session = {
        vmId: vm.id,
        open: true,
        close() {
          session.open = false;
        },
      };
      sessions.push(session);
      const basics = { home: "/root", hasBash: true, path: "/usr/bin:/bin", kernel: "Linux", machine: "x86_64" };
      return { session: session as unknown as GuestSession, basics };
    },
  });
  const jobSlots = new JobSlots(slots, opts.capacity, pool, log, opts.defers);
  return { ...fake, slots, pool, jobSlots, sessions };
}

async function until(check: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe("warm pool accounting", () => {
  test("refill boots up to the target, each pooled VM holding a slot, and no further", async () => {
    const { pool, slots, boots } = setUp({ capacity: { tiny: 2 }, pool: { tiny: 1 } });
    pool.refill("tiny");
    pool.refill("tiny");
    assert.equal(pool.sizes().tiny?.booting, 1);
    assert.deepEqual(slots.inUse(), { total: 1, byLabel: { tiny: 1 } });
    await until(() => pool.sizes().tiny?.idle === 1, "the VM to be idle");
    assert.equal(boots.length, 1);
    assert.equal(boots[0]?.spec.pooled, true);
    assert.deepEqual(pool.sizes(), { tiny: { idle: 1, booting: 0, memoryMiB: 256 } });
    pool.refill("tiny");
    assert.equal(boots.length, 1);
  });

  test("a job takes the idle warm VM and its slot; the pool refills only after the queue stayed quiet", async () => {
    const { pool, slots, jobSlots, boots } = setUp({ capacity: { tiny: 2 }, pool: { tiny: 1 }, refillQuietMs: 150 });
    pool.refill("tiny");
    await until(() => pool.sizes().tiny?.idle === 1, "the VM to be idle");
    assert.equal(jobSlots.tryAcquire("tiny"), true);
    const vm = await jobSlots.start("tiny");
    assert.equal(vm?.vm.id, "vm-1");
    assert.equal(vm?.session.open, true, "the job gets the session the pool kept open to its VM");
    assert.deepEqual(slots.inUse(), { total: 1, byLabel: { tiny: 1 } }, "the job holds the pooled VM's slot");
    pool.refill("tiny");
    assert.equal(pool.sizes().tiny?.booting, 0, "no refill right after a job started");
    await sleep(200);
    pool.refill("tiny");
    assert.equal(pool.sizes().tiny?.booting, 1);
    assert.deepEqual(slots.inUse().total, 2);
    await until(() => boots.length === 2, "the second boot");
  });

  test("capacity 2 and a pool of 1: two jobs at once get one warm VM and one free slot, a third gets nothing", async () => {
    const { pool, slots, jobSlots } = setUp({ capacity: { tiny: 2 }, pool: { tiny: 1 } });
    pool.refill("tiny");
    await until(() => pool.sizes().tiny?.idle === 1, "the VM to be idle");
    assert.equal(jobSlots.tryAcquire("tiny"), true);
    assert.equal(jobSlots.tryAcquire("tiny"), true);
    assert.equal(jobSlots.tryAcquire("tiny"), false);
    assert.equal(slots.inUse().total, 2);
    const first = await jobSlots.start("tiny");
    const second = await jobSlots.start("tiny");
    assert.equal(first?.vm.id, "vm-1", "the first job runs warm");
    assert.equal(second, undefined, "the second boots a fresh VM");
    assert.equal(slots.inUse().total, 2);
  });

  test("a label left to a KVM host takes neither a slot nor the warm VM until the preference lifts", async () => {
    let deferring = true;
    const { pool, slots, jobSlots } = setUp({
      capacity: { "tiny-arm64": 2 },
      pool: { "tiny-arm64": 1 },
      defers: (label) => deferring && label === "tiny-arm64",
    });
    pool.refill("tiny-arm64");
    await until(() => pool.sizes()["tiny-arm64"]?.idle === 1, "the VM to be idle");
    assert.equal(jobSlots.tryAcquire("tiny-arm64"), false);
    assert.deepEqual(slots.inUse(), { total: 1, byLabel: { "tiny-arm64": 1 } }, "only the pooled VM's slot");
    assert.equal(pool.sizes()["tiny-arm64"]?.idle, 1);
    deferring = false;
    assert.equal(jobSlots.tryAcquire("tiny-arm64"), true);
    assert.equal(pool.sizes()["tiny-arm64"]?.idle, 0, "the job took the warm VM");
  });

  test("a claim given back (empty queue) returns the VM to the pool untouched", async () => {
    const { pool, jobSlots, vms, boots } = setUp({ capacity: { tiny: 1 }, pool: { tiny: 1 } });
    pool.refill("tiny");
    await until(() => pool.sizes().tiny?.idle === 1, "the VM to be idle");
    assert.equal(jobSlots.tryAcquire("tiny"), true);
    assert.equal(pool.sizes().tiny?.idle, 0);
    jobSlots.release("tiny");
    assert.equal(pool.sizes().tiny?.idle, 1);
    assert.equal(vms[0]?.destroyed, false);
    assert.equal(boots.length, 1);
  });

  test("under the total bound, a job of another label takes over an idle warm VM's slot; the VM is destroyed first", async () => {
    const { pool, slots, jobSlots, vms } = setUp({ capacity: { tiny: 1, debian: 1 }, total: 1, pool: { tiny: 1 } });
    pool.refill("tiny");
    await until(() => pool.sizes().tiny?.idle === 1, "the VM to be idle");
    assert.equal(slots.tryAcquire("debian"), false, "the pool fills the host");
    // An empty queue gives the VM back as it was.
    assert.equal(jobSlots.tryAcquire("debian"), true);
    jobSlots.release("debian");
    assert.equal(pool.sizes().tiny?.idle, 1);
    assert.equal(vms[0]?.destroyed, false);
    // A job takes its slot.
    assert.equal(jobSlots.tryAcquire("debian"), true);
    assert.equal(await jobSlots.start("debian"), undefined);
    assert.equal(vms[0]?.destroyed, true);
    assert.deepEqual(slots.inUse(), { total: 1, byLabel: { tiny: 0, debian: 1 } });
  });

  test("failed boots are retried with a doubling backoff, never in a loop, and give their slots back", async () => {
    const fake = fakeBackend({ fail: true, bootMs: 1 });
    const { pool, slots } = setUp({ capacity: { tiny: 1 }, pool: { tiny: 1 }, backend: fake, backoffMs: 100 });
    // The consumer asks every few milliseconds here (every 200 ms in production).
    const started = Date.now();
    while (Date.now() - started < 1_000) {
      pool.refill("tiny");
      await sleep(5);
    }
    // Tries at about 0, 100, 300 and 700 ms (later under load, never sooner).
    assert.ok(fake.boots.length >= 2 && fake.boots.length <= 4, `${fake.boots.length} boots in 1 s`);
    const gaps = fake.boots.slice(1).map((b, i) => b.at - (fake.boots[i]?.at ?? 0));
    for (const [i, gap] of gaps.entries()) assert.ok(gap >= 100 * 2 ** i - 5, `gap ${i} was ${gap} ms: ${gaps}`);
    await until(() => slots.inUse().total === 0, "the slot to be given back");
  });

  test("an idle VM that stops on its own is destroyed and replaced after the backoff", async () => {
    const { pool, slots, vms, boots } = setUp({ capacity: { tiny: 1 }, pool: { tiny: 1 }, backoffMs: 200 });
    pool.refill("tiny");
    await until(() => pool.sizes().tiny?.idle === 1, "the VM to be idle");
    vms[0]?.crash();
    await until(() => slots.inUse().total === 0, "its slot to be given back");
    assert.equal(vms[0]?.destroyed, true, "its run directory is cleaned up");
    pool.refill("tiny");
    assert.equal(pool.sizes().tiny?.booting, 0, "no replacement before the backoff");
    await sleep(250);
    pool.refill("tiny");
    assert.equal(pool.sizes().tiny?.booting, 1);
    await until(() => boots.length === 2, "the replacement boot");
  });

  test("pause (drain) destroys idle VMs and stops boots; nothing refills until resume", async () => {
    const fake = fakeBackend({ bootMs: 300 });
    const { pool, slots, sessions } = setUp({ capacity: { tiny: 2 }, pool: { tiny: 2 }, backend: fake });
    pool.refill("tiny");
    await until(() => fake.boots.length === 2, "two boots under way");
    await pool.pause();
    assert.deepEqual(slots.inUse().total, 0);
    assert.deepEqual(pool.sizes().tiny, { idle: 0, booting: 0, memoryMiB: 0 });
    pool.refill("tiny");
    assert.equal(pool.sizes().tiny?.booting, 0);
    pool.resume();
    pool.refill("tiny");
    assert.equal(pool.sizes().tiny?.booting, 2);
    await until(() => pool.sizes().tiny?.idle === 2, "two idle VMs");
    await pool.pause();
    assert.ok(fake.vms.every((vm) => vm.destroyed));
    assert.equal(sessions.length, 2);
    assert.ok(
      sessions.every((session) => !session.open),
      "the sessions kept open to the idle VMs are closed",
    );
    assert.deepEqual(slots.inUse().total, 0);
  });

  test("a claim given back after the pool closed is destroyed, not pooled", async () => {
    const { pool, slots, jobSlots, vms } = setUp({ capacity: { tiny: 1 }, pool: { tiny: 1 } });
    pool.refill("tiny");
    await until(() => pool.sizes().tiny?.idle === 1, "the VM to be idle");
    assert.equal(jobSlots.tryAcquire("tiny"), true);
    await pool.close();
    jobSlots.release("tiny");
    await until(() => slots.inUse().total === 0, "the slot to be given back");
    assert.equal(vms[0]?.destroyed, true);
  });
});
