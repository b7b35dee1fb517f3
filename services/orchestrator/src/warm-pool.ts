import type { CapacitySlotGate } from "@solstice/bus";
import { attachWarmVm, type GuestBasics } from "@solstice/executor";
import type { GuestSession } from "@solstice/ssh";
import type { Vm, VmBackend } from "@solstice/vm";
import type { Logger } from "pino";

/** A VM of the pool: booted and idle, its keys made in memory when it booted, no job data seen. */
export interface PooledVm {
  readonly label: string;
  readonly vm: Vm;
  /**
   * An SSH session opened once the VM was ready and kept alive while it waits, so its job skips
   * the handshake (0.3 s under TCG); the job closes it with the VM.
   */
  readonly session: GuestSession;
  /** The guest's home, shell, PATH and platform, learned on that session while it waits. */
  readonly basics: GuestBasics;
  readonly memoryMiB: number;
}

/** What the pool holds for one label now. */
export interface PoolSize {
  /** Booted and waiting for a job. */
  readonly idle: number;
  readonly booting: number;
  /** Guest memory of those VMs (booting ones counted once their image is known). */
  readonly memoryMiB: number;
}

export interface WarmPoolOptions {
  /** VMs wanted per label; labels left out have no pool. */
  readonly targets: Readonly<Record<string, number>>;
  readonly backend: VmBackend;
  /** The host's slots: every pooled VM, booting or idle, holds one of its label's. */
  readonly slots: CapacitySlotGate;
  readonly log: Logger;
  /** Pause after the first failed boot of a label; doubles with each failure in a row (default 5000). */
  readonly backoffMs?: number;
  /** Longest pause between failed boots (default 300000). */
  readonly maxBackoffMs?: number;
  /**
   * How long a label's queue must have been empty since its last job before the pool refills it
   * (default 1000), so a burst of jobs gets the free slots before the pool does.
   */
  readonly refillQuietMs?: number;
  /**
   * Opens the session a pooled VM keeps while it waits and learns the guest's basics on it
   * (default: `attachWarmVm`, SSH with keepalives).
   */
  readonly attach?: (vm: Vm, signal: AbortSignal) => Promise<{ session: GuestSession; basics: GuestBasics }>;
}

interface Boot {
  readonly abort: AbortController;
  memoryMiB: number;
  /** Whether its VM may exist yet (the image is resolved and the backend is booting it). */
  booting: boolean;
  done?: Promise<void>;
}

interface LabelPool {
  readonly target: number;
  readonly idle: PooledVm[];
  readonly booting: Set<Boot>;
  /** Failed boots (or idle VMs that died) in a row. */
  failures: number;
  /** No new boot before this time (the backoff after a failure). */
  retryAt: number;
  lastJobAt: number;
}

/**
 * Per label, a few VMs booted ahead of their jobs. Each is handed to one job and destroyed with it;
 * the pool boots replacements in the background, only into slots no job wanted (`refill` is called
 * when the label's queue was found empty). A failed boot, or an idle VM that died, is replaced
 * after a backoff that doubles up to `maxBackoffMs`, never in a loop.
 */
export class WarmPool {
  private readonly pools = new Map<string, LabelPool>();
  private readonly idleListeners = new Set<() => void>();
  private readonly dead = new WeakSet<PooledVm>();
  private paused = false;
  private closed = false;
  private serial = 0;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly refillQuietMs: number;

  constructor(private readonly opts: WarmPoolOptions) {
    for (const [label, target] of Object.entries(opts.targets)) {
      if (target > 0) {
        this.pools.set(label, {
          target,
          idle: [],
          booting: new Set(),
          failures: 0,
          retryAt: 0,
          lastJobAt: 0,
        });
      }
    }
    this.backoffMs = opts.backoffMs ?? 5_000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 300_000;
    this.refillQuietMs = opts.refillQuietMs ?? 1_000;
  }

  /** Whether `label` has a pool at all. */
  serves(label: string): boolean {
    return this.pools.has(label);
  }

  /**
   * Boots VMs for `label` up to its target, into free slots only. Call it when the label's queue
   * was just found empty: a slot a waiting job could use is never taken.
   */
  refill(label: string): void {
    const pool = this.pools.get(label);
    if (!pool || this.paused) return;
    const now = Date.now();
    if (now < pool.retryAt || now - pool.lastJobAt < this.refillQuietMs) return;
    while (pool.idle.length + pool.booting.size < pool.target && this.opts.slots.tryAcquire(label)) {
      this.startBoot(label, pool);
    }
  }

  /** Takes the longest-waiting idle VM of `label` out of the pool; its slot goes with it. */
  take(label: string): PooledVm | undefined {
    return this.pools.get(label)?.idle.shift();
  }

  /** Takes an idle VM of a label other than `label` (the one with most idle), slot and all. */
  takeOther(label: string): PooledVm | undefined {
    let best: LabelPool | undefined;
    for (const [other, pool] of this.pools) {
      if (other !== label && pool.idle.length > 0 && pool.idle.length > (best?.idle.length ?? 0)) best = pool;
    }
    return best?.idle.shift();
  }

  /** Puts back a VM taken for a job that never started: it saw no job data. Its slot comes back with it. */
  giveBack(pooled: PooledVm): void {
    const pool = this.pools.get(pooled.label);
    if (!pool || this.paused || this.dead.has(pooled)) {
      void this.discard(pooled, this.paused ? "the pool is paused" : "it stopped");
      return;
    }
    pool.idle.unshift(pooled);
  }

  /** A job of `label` just started: the pool waits for the queue to stay quiet before refilling. */
  noteJobStarted(label: string): void {
    const pool = this.pools.get(label);
    if (pool) pool.lastJobAt = Date.now();
  }

  /** Calls `listener` whenever a VM becomes idle (a job may start now); returns the unsubscribe. */
  onIdle(listener: () => void): () => void {
    this.idleListeners.add(listener);
    return () => this.idleListeners.delete(listener);
  }

  sizes(): Record<string, PoolSize> {
    const sizes: Record<string, PoolSize> = {};
    for (const [label, pool] of this.pools) {
      let memoryMiB = pool.idle.reduce((sum, p) => sum + p.memoryMiB, 0);
      for (const boot of pool.booting) memoryMiB += boot.memoryMiB;
      sizes[label] = { idle: pool.idle.length, booting: pool.booting.size, memoryMiB };
    }
    return sizes;
  }

  /** Destroys the idle VMs and stops the boots under way (drain); `refill` does nothing until `resume`. */
  async pause(): Promise<void> {
    this.paused = true;
    const idle: PooledVm[] = [];
    const boots: Promise<void>[] = [];
    for (const pool of this.pools.values()) {
      idle.push(...pool.idle.splice(0));
      for (const boot of pool.booting) {
        boot.abort.abort(new Error("the warm pool is paused"));
        // One still resolving its image (a build can take minutes) gives its slot back once that
        // is done, without booting: no need to wait for it.
        if (boot.booting && boot.done !== undefined) boots.push(boot.done);
      }
    }
    await Promise.all([...idle.map((p) => this.discard(p, "the pool is paused")), ...boots]);
  }

  resume(): void {
    if (!this.closed) this.paused = false;
  }

  /** Destroys every pooled VM; VMs given back later are destroyed too. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pause();
  }

  private startBoot(label: string, pool: LabelPool): void {
    const boot: Boot = { abort: new AbortController(), memoryMiB: 0, booting: false };
    const vmName = `pool-${label}-${++this.serial}`;
    const log = this.opts.log.child({ pool: label, vm: vmName });
    pool.booting.add(boot);
    boot.done = (async () => {
      let pooled: PooledVm;
      try {
        const image = await this.opts.backend.ensureImage(label);
        boot.memoryMiB = image.defaultMemoryMiB;
        boot.booting = true;
        const vm = await this.opts.backend.boot({ vmName, image, pooled: true, signal: boot.abort.signal, log });
        const attach = this.opts.attach ?? attachWarmVm;
        const { session, basics } = await attach(vm, boot.abort.signal).catch(async (error: unknown) => {
          await vm.destroy().catch(() => undefined);
          throw error;
        });
        pooled = { label, vm, session, basics, memoryMiB: image.defaultMemoryMiB };
      } catch (error) {
        pool.booting.delete(boot);
        this.opts.slots.release(label);
        if (!boot.abort.signal.aborted) this.failed(label, pool, log, error);
        return;
      }
      pool.booting.delete(boot);
      if (this.paused) {
        await this.discard(pooled, "the pool is paused");
        return;
      }
      pool.failures = 0;
      pool.idle.push(pooled);
      log.info({ bootMs: pooled.vm.bootMs }, "warm VM ready");
      void pooled.vm.exited?.then(() => this.exited(pooled, pool, log));
      for (const listener of this.idleListeners) listener();
    })();
  }

  /** An idle VM stopped on its own: replace it, with the same backoff as a failed boot. */
  private exited(pooled: PooledVm, pool: LabelPool, log: Logger): void {
    this.dead.add(pooled);
    const at = pool.idle.indexOf(pooled);
    if (at < 0) return; // taken by a job, or already discarded: not the pool's to replace
    pool.idle.splice(at, 1);
    void this.discard(pooled, "it stopped while idle");
    this.failed(pooled.label, pool, log, new Error("the idle warm VM stopped"));
  }

  private failed(label: string, pool: LabelPool, log: Logger, error: unknown): void {
    pool.failures++;
    const delayMs = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** (pool.failures - 1));
    pool.retryAt = Date.now() + delayMs;
    log.warn(
      { err: error, failures: pool.failures, retryInMs: delayMs },
      `warm VM for ${label} failed; next try later`,
    );
  }

  /** Destroys a pooled VM and gives its slot back. */
  private async discard(pooled: PooledVm, why: string): Promise<void> {
    pooled.session.close();
    await pooled.vm
      .destroy()
      .catch((error: unknown) => this.opts.log.error({ err: error, pool: pooled.label }, "warm VM teardown failed"));
    this.opts.slots.release(pooled.label);
    this.opts.log.info({ pool: pooled.label, vmId: pooled.vm.id, why }, "warm VM destroyed");
  }
}
