import { createHash } from "node:crypto";
import { readdir, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { LocalImage } from "@solstice/images";
import type { Accelerator } from "./accelerator-probe.ts";
import type { ConsoleCapture } from "./console-capture.ts";
import { VmError } from "./errors.ts";
import { scrubFreeMemory } from "./key-agent.ts";
import { qemuArgs } from "./qemu-args.ts";
import type { QmpClient } from "./qmp.ts";

/** What the agent init prints once it sits waiting for keys: the state worth saving. */
const AGENT_WAITING = /solstice-guest\[[0-9.]+\]: agent waiting on /;
/** After that line, time for the guest to settle into its retry loop before it is stopped. */
const SETTLE_MS = 500;
const POLL_MS = 20;
const QMP_STEP_MS = 10_000;

/**
 * Names a saved state by everything a restore must match: the image build, the machine and device
 * command line (file paths, socket paths and the SSH port left out, they may differ), and the
 * QEMU build. A change to any of them names a new state, so an old one is never restored.
 */
export function templateKey(input: {
  image: LocalImage;
  accelerator: Accelerator;
  cpus: number;
  memoryMiB: number;
  hostTscKhz: number | undefined;
  qemuVersion: string;
  tcgAddressRandomization?: boolean;
}): string {
  const args = qemuArgs({
    image: input.image,
    accelerator: input.accelerator,
    cpus: input.cpus,
    memoryMiB: input.memoryMiB,
    overlayPath: "@overlay",
    qmpSocket: "@qmp",
    agentSocket: "@agent",
    sshPort: 0,
    ...(input.hostTscKhz !== undefined ? { hostTscKhz: input.hostTscKhz } : {}),
    ...(input.tcgAddressRandomization !== undefined ? { tcgAddressRandomization: input.tcgAddressRandomization } : {}),
  });
  return createHash("sha256")
    .update(JSON.stringify({ recipe: input.image.recipeHash, args, qemu: input.qemuVersion }))
    .digest("hex")
    .slice(0, 16);
}

/**
 * Saves a freshly booted guest once its agent waits for keys: the agent zeroes the guest's free
 * memory (SCRUB), then QMP `stop`, then the whole state streamed to `statePath`. The guest holds
 * no keys, no job data and no host key at that point.
 */
export async function saveGuestState(opts: {
  qmp: QmpClient;
  capture: ConsoleCapture;
  agentSocket: string;
  statePath: string;
  signal: AbortSignal;
}): Promise<void> {
  const { qmp, signal } = opts;
  while (!AGENT_WAITING.test(opts.capture.tail())) await sleep(POLL_MS, undefined, { signal });
  await scrubFreeMemory({ socketPath: opts.agentSocket, capture: opts.capture, signal });
  await sleep(SETTLE_MS, undefined, { signal });
  if (opts.statePath.includes("'")) throw new VmError("boot_failed", `unusable state path ${opts.statePath}`);
  await qmp.execute("stop", QMP_STEP_MS);
  await qmp.execute("migrate", QMP_STEP_MS, { uri: `exec:cat > '${opts.statePath}'` });
  for (;;) {
    const state = (await qmp.execute("query-migrate", QMP_STEP_MS)) as { status?: string; "error-desc"?: string };
    if (state.status === "completed") return;
    if (state.status === "failed" || state.status === "cancelled") {
      throw new VmError("boot_failed", `saving the guest state failed: ${state["error-desc"] ?? state.status}`);
    }
    await sleep(POLL_MS, undefined, { signal });
  }
}

/** Waits until QEMU has loaded an `-incoming` state and `before` has resolved, then lets the guest run. */
export async function resumeIncoming(qmp: QmpClient, signal: AbortSignal, before?: Promise<void>): Promise<void> {
  for (;;) {
    let reply: unknown;
    try {
      reply = await qmp.execute("query-status", QMP_STEP_MS);
    } catch (error) {
      // QEMU creates its QMP socket a moment after it starts.
      if (!(error instanceof VmError) || error.code !== "qmp_failed" || signal.aborted) throw error;
      await sleep(POLL_MS / 2, undefined, { signal });
      continue;
    }
    const { status } = reply as { status?: string };
    if (status === "paused" || status === "postmigrate" || status === "prelaunch") break;
    if (status === "running") return;
    if (status !== "inmigrate") throw new VmError("boot_failed", `restoring the guest state left QEMU ${status}`);
    await sleep(POLL_MS, undefined, { signal });
  }
  await before;
  await qmp.execute("cont", QMP_STEP_MS);
}

/**
 * How long a saved state may go unrestored before `pruneSnapshots` deletes it: a state whose key
 * no longer matches (a rebuilt image, new QEMU, other memory size) is never restored again, and at
 * 40–120 MB each they would pile up. One still wanted is simply saved again (about 5 s under TCG).
 */
export const SNAPSHOT_UNUSED_MS = 7 * 24 * 3600 * 1000;
/** A partial state this old belongs to a save that died with its process. */
const PARTIAL_STALE_MS = 3600 * 1000;

/**
 * The template's own disk layer, saved beside its state: the qcow2 overlay the template booted on,
 * holding what its boot wrote (a Debian guest's root filesystem is on the disk). A restore's memory
 * refers to exactly those blocks, so each restored guest gets a fresh overlay on this file, never
 * on the bare image: the state and the disk it was saved with are one snapshot.
 */
export function templateDiskPath(statePath: string): string {
  return statePath.replace(/\.state$/, ".disk.qcow2");
}

/** Marks a state and its disk layer as used now (their mtime), so pruning keeps them. */
export async function touchSnapshot(statePath: string, now = new Date()): Promise<void> {
  await utimes(statePath, now, now);
  await utimes(templateDiskPath(statePath), now, now).catch(() => undefined);
}

/**
 * Deletes, in the snapshots directory, states and their disk layers not restored for `unusedMs`
 * (their mtime is the last restore), partial states of saves that died, and lock files whose state is gone. Returns
 * the names removed. Never throws for a file another process removed first.
 */
export async function pruneSnapshots(dir: string, opts: { unusedMs?: number; now?: number } = {}): Promise<string[]> {
  const unusedMs = opts.unusedMs ?? SNAPSHOT_UNUSED_MS;
  const now = opts.now ?? Date.now();
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  // Locks last, so the lock of a state deleted in this pass goes with it.
  const ordered = [...names.filter((n) => !n.endsWith(".lock")), ...names.filter((n) => n.endsWith(".lock"))];
  for (const name of ordered) {
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) continue;
    const age = now - info.mtimeMs;
    const orphanLock =
      name.endsWith(".lock") &&
      age > PARTIAL_STALE_MS &&
      !(await stat(path.replace(/\.lock$/, ".state")).then(
        () => true,
        () => false,
      ));
    const stale =
      ((name.endsWith(".state") || name.endsWith(".disk.qcow2")) && age > unusedMs) ||
      (name.endsWith(".part") && age > PARTIAL_STALE_MS) ||
      orphanLock;
    if (!stale) continue;
    await rm(path, { force: true });
    removed.push(name);
  }
  return removed;
}
