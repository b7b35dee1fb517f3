import { open, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
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
  /**
   * Called every `reportEveryMs` while waiting: who holds the lock, how long this process has
   * waited of its bound, and what the holder last said of its progress (see `share` below).
   */
  onWaiting?: (wait: LockWait) => void;
  /** Default 15000. */
  reportEveryMs?: number;
}

export interface LockWait {
  holder: string;
  waitedMs: number;
  boundMs: number;
  /** The holder's last progress, when it shares one. */
  progress?: SharedProgress;
}

/** What a lock holder tells the processes waiting for it. */
export interface SharedProgress {
  phase: string;
  fraction?: number;
}

/** Shares the holder's progress with waiting processes (a file beside the lock). */
export type ShareProgress = (progress: SharedProgress) => void;

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
export async function withBuildLock<T>(
  lockPath: string,
  options: BuildLockOptions,
  fn: (share: ShareProgress) => Promise<T>,
): Promise<T> {
  const started = Date.now();
  let announced = false;
  let reportedAt = started;
  let lastProgress: SharedProgress | undefined;
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
        return await fn(progressSharer(progressPath(lockPath)));
      } finally {
        await unlink(progressPath(lockPath)).catch(() => undefined);
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
    lastProgress = (await readSharedProgress(lockPath)) ?? lastProgress;
    if (Date.now() - reportedAt >= (options.reportEveryMs ?? 15_000)) {
      reportedAt = Date.now();
      options.onWaiting?.({
        holder,
        waitedMs: Date.now() - started,
        boundMs: options.waitTimeoutMs,
        ...(lastProgress ? { progress: lastProgress } : {}),
      });
    }
    if (Date.now() - started > options.waitTimeoutMs) {
      throw new ImageLockTimeoutError(
        lockPath,
        Date.now() - started,
        holder,
        lastProgress && describeProgress(lastProgress),
      );
    }
    await sleep(options.pollMs ?? 250, undefined, { signal: options.signal });
  }
}

function progressPath(lockPath: string): string {
  return `${lockPath}.progress`;
}

/** "building 40%", for a log line or an error. */
export function describeProgress(progress: SharedProgress): string {
  return `${progress.phase}${progress.fraction === undefined ? "" : ` ${Math.round(progress.fraction * 100)}%`}`;
}

// At most one write a second: waiting processes poll the file, they need no finer steps.
function progressSharer(file: string): ShareProgress {
  let writtenAt = 0;
  return (progress) => {
    if (Date.now() - writtenAt < 1_000 && progress.fraction !== 1) return;
    writtenAt = Date.now();
    writeFile(file, JSON.stringify(progress)).catch(() => {
      // Progress for others is a courtesy; the build goes on without it.
    });
  };
}

async function readSharedProgress(lockPath: string): Promise<SharedProgress | undefined> {
  try {
    const parsed = JSON.parse(await readFile(progressPath(lockPath), "utf8")) as Partial<SharedProgress>;
    if (typeof parsed.phase !== "string") return undefined;
    return { phase: parsed.phase, ...(typeof parsed.fraction === "number" ? { fraction: parsed.fraction } : {}) };
  } catch {
    return undefined;
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
