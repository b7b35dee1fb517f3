import { open, readFile, rename, stat, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { ImageLockTimeoutError } from "./errors.ts";

export interface BuildLockOptions {
  signal?: AbortSignal;
  /** Longest wait for another process's build. */
  waitTimeoutMs: number;
  /** Pause between attempts while another process holds the lock. Default 250. */
  pollMs?: number;
  /** Called once, when the lock turns out to be held by someone else. */
  onWait?: (holder: string) => void;
}

/** A lock file younger than this with no pid in it is being written, not abandoned. */
const unwrittenLockGraceMs = 10_000;

/**
 * Runs `fn` while holding a cross-process lock: a file created with O_EXCL that holds
 * "pid host". A lock whose process is gone (same host, pid not alive) is stale and taken
 * over. Holders on another host (a shared cache directory) are only waited for.
 *
 * Correctness never depends on this lock: builds go to private temp directories and are
 * published with an atomic rename. The lock only stops two processes doing the same build.
 */
export async function withBuildLock<T>(lockPath: string, options: BuildLockOptions, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  let announced = false;
  for (;;) {
    options.signal?.throwIfAborted();
    const handle = await open(lockPath, "wx").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "EEXIST") return undefined;
      throw error;
    });
    if (handle) {
      try {
        await handle.writeFile(`${process.pid} ${hostname()}\n`);
      } finally {
        await handle.close();
      }
      try {
        return await fn();
      } finally {
        await unlink(lockPath).catch(() => undefined);
      }
    }
    const holder = await readHolder(lockPath);
    if (holder === "gone") continue;
    if (holder === "stale") {
      await breakStaleLock(lockPath);
      continue;
    }
    if (!announced) {
      announced = true;
      options.onWait?.(holder);
    }
    if (Date.now() - started > options.waitTimeoutMs) {
      throw new ImageLockTimeoutError(lockPath, Date.now() - started, holder);
    }
    await sleep(options.pollMs ?? 250, undefined, { signal: options.signal });
  }
}

/** "gone" (no file any more), "stale" (holder dead), or a description of the live holder. */
async function readHolder(lockPath: string): Promise<string> {
  let text: string;
  let mtimeMs: number;
  try {
    [text, mtimeMs] = await Promise.all([readFile(lockPath, "utf8"), stat(lockPath).then((s) => s.mtimeMs)]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "gone";
    throw error;
  }
  const [pidText, host] = text.trim().split(" ");
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || !host) {
    return Date.now() - mtimeMs > unwrittenLockGraceMs ? "stale" : "lock being written";
  }
  if (host !== hostname()) return `held by pid ${pid} on ${host}`;
  return isAlive(pid) ? `held by pid ${pid}` : "stale";
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Renames the stale lock aside before deleting it, so that of several processes breaking it
 * at once only one succeeds; the others see ENOENT and simply retry the O_EXCL create.
 */
async function breakStaleLock(lockPath: string): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${Date.now()}`;
  try {
    await rename(lockPath, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  await unlink(aside).catch(() => undefined);
}
