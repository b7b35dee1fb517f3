import type { ImageProgress } from "@solstice/images";
import type { JobRequest } from "@solstice/protocol";
import { connectSsh, type GuestSession } from "@solstice/ssh";
import type { Vm, VmBackend } from "@solstice/vm";
import type { Logger } from "pino";
import { type GuestBasics, learnGuestBasics } from "./guest-facts.ts";
import type { JobEventStream } from "./job-events.ts";

/** Bound on the SSH handshake with a warm VM: it answers in well under a second when healthy. */
const WARM_CONNECT_TIMEOUT_MS = 15_000;

export interface JobVmOptions {
  readonly job: JobRequest;
  readonly backend: VmBackend;
  readonly events: JobEventStream;
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** A VM booted ahead of the job (a warm pool's); the job owns it from now on. */
  readonly warm?: WarmVm;
  /** Image progress for the job's log or a terminal status line. */
  readonly progress: ImageProgress;
  /** A transient status line, updated while a cold boot runs. */
  readonly status?: (text: string) => void;
}

/** A VM booted ahead of its job, as a warm pool hands it over. */
export interface WarmVm {
  readonly vm: Vm;
  /** An SSH session the pool opened while the VM waited; the job uses it while it is still open. */
  readonly session?: GuestSession;
  /** The guest's basics, learned while it waited: the job then needs no round trip of its own. */
  readonly basics?: GuestBasics;
}

/** Keepalives on a session held open ahead of its job: a dead connection is found within about 3 of them. */
const WARM_KEEPALIVE_MS = 10_000;

/**
 * Waits, in a guest whose init is systemd, until it has finished starting up (its state is no
 * longer "initializing" or "starting"; a degraded system counts as started). The key agent answers
 * once `basic.target` is up, and a cold-booted Debian has seconds of boot left then (multi-user's
 * other units, dbus): a job handed the VM at once would share the CPU with them. Guests without
 * systemctl have nothing to wait for.
 */
const SETTLE_SCRIPT =
  "command -v systemctl >/dev/null 2>&1 && systemctl is-system-running --wait >/dev/null 2>&1; true";
/** Bound on that wait: a unit that never finishes starting must not keep the VM out of the pool. */
const SETTLE_TIMEOUT_MS = 120_000;

/**
 * Makes a VM booted ahead of its job ready to hand over: opens the SSH session it keeps while it
 * waits (with keepalives, so it is never found half-open), waits for the guest's init to finish
 * starting up, and learns the guest's basics on it.
 */
export async function attachWarmVm(vm: Vm, signal?: AbortSignal): Promise<Required<WarmVm>> {
  // A session on the agent's channel needs no keepalives: it is no TCP connection that could be
  // found half-open, and it closes when QEMU does.
  const session =
    vm.takeSession?.() ??
    (await connectSsh(vm.ssh, { ...(signal ? { signal } : {}), keepaliveIntervalMs: WARM_KEEPALIVE_MS }));
  try {
    const settle = AbortSignal.timeout(SETTLE_TIMEOUT_MS);
    await session
      .exec(SETTLE_SCRIPT, { signal: signal ? AbortSignal.any([signal, settle]) : settle })
      .catch((error: unknown) => {
        // Past the bound the VM is pooled as it is; an abort of the pool's own is passed on.
        if (signal?.aborted || !settle.aborted) throw error;
      });
    return { vm, session, basics: await learnGuestBasics(session, signal) };
  } catch (error) {
    session.close();
    throw error;
  }
}

export interface JobVm {
  readonly vm: Vm;
  readonly session: GuestSession;
  /** Whether the VM came from the warm pool (its clock may have drifted while it waited). */
  readonly warm: boolean;
}

/**
 * The job's VM, connected: the warm VM it was given, or a fresh one booted now. A warm VM that does
 * not answer is destroyed and the job boots a fresh VM instead. On failure nothing is left running.
 */
export async function startJobVm(options: JobVmOptions): Promise<JobVm> {
  const { job, events, signal, log } = options;
  const vmName = `${job.jobId}-${job.attempt}`;
  const warm = options.warm?.vm;
  const warmSession = options.warm?.session;
  if (warm) {
    events.line(
      `Using a warm VM from the pool (booted in ${(warm.bootMs / 1000).toFixed(1)} s, accelerator: ${warm.accelerator})`,
      "system",
    );
    try {
      await warm.handOver?.({ vmName, log, signal });
      const ready = warmSession?.open ? warmSession : undefined;
      if (!ready) warmSession?.close();
      const session = ready ?? (await connectSsh(warm.ssh, { signal, readyTimeoutMs: WARM_CONNECT_TIMEOUT_MS }));
      return { vm: warm, session, warm: true };
    } catch (error) {
      warmSession?.close();
      await warm.destroy().catch((destroyError: unknown) => log.error({ err: destroyError }, "VM teardown failed"));
      if (signal.aborted) throw error;
      log.warn({ err: error }, "the warm VM did not answer; booting a fresh one");
      events.line(
        `The warm VM did not answer (${error instanceof Error ? error.message : String(error)}); booting a fresh VM instead`,
        "system",
      );
    }
  }

  events.line(`Preparing image for label ${job.runsOn}`, "system");
  const image = await options.backend.ensureImage(job.runsOn, options.progress);
  events.line(`Booting a fresh VM (${image.label}, ${image.machine})`, "system");
  const bootStarted = Date.now();
  const status = options.status;
  const bootTicker = status
    ? setInterval(() => status(`booting ${image.label}… ${Math.round((Date.now() - bootStarted) / 1000)} s`), 1000)
    : undefined;
  let vm: Vm;
  try {
    vm = await options.backend.boot({ vmName, image, signal, log });
  } finally {
    clearInterval(bootTicker);
  }
  const how = vm.restored ? ", restored from a snapshot" : "";
  events.line(`VM ready in ${(vm.bootMs / 1000).toFixed(1)} s (accelerator: ${vm.accelerator}${how})`, "system");
  try {
    return { vm, session: vm.takeSession?.() ?? (await connectSsh(vm.ssh, { signal })), warm: false };
  } catch (error) {
    await vm.destroy().catch((destroyError: unknown) => log.error({ err: destroyError }, "VM teardown failed"));
    throw error;
  }
}
