import { Backoff, sleep } from "@solstice/forge-relay";
import type { Logger } from "pino";
import { HttpStatusError } from "../errors.ts";

export interface JobLockOptions {
  /** One renewal; resolves with the new lockedUntil when the service says it. */
  renew(signal: AbortSignal): Promise<Date | undefined>;
  /** Between renewals. Default 60000, as the official runner. */
  intervalMs?: number;
  log: Logger;
}

export interface JobLock {
  /** Resolves once the first renewal succeeded (the job may start); rejects after 5 failed tries. */
  readonly ready: Promise<void>;
  /** Aborted when the job is no longer ours: GitHub answered 404, or renewals failed past lockedUntil + 5 min. */
  readonly lost: AbortSignal;
  stop(): void;
}

/** After lockedUntil, renewals keep being tried this long before the job is given up, as the official runner. */
const GRACE_AFTER_LOCK_MS = 5 * 60_000;

/**
 * Keeps a job's lock for as long as it runs: renews at once (the job starts only after that
 * succeeds), then every interval, so the lock never lapses while a VM works on it.
 */
export function holdJobLock(opts: JobLockOptions): JobLock {
  const stopped = new AbortController();
  const lost = new AbortController();
  const interval = opts.intervalMs ?? 60_000;
  let resolveReady: () => void = () => {};
  let rejectReady: (error: unknown) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // Nobody may be waiting on `ready` when it fails late; the caller reads it once.
  ready.catch(() => {});

  const run = async () => {
    let lockedUntil = Date.now() + interval;
    const backoff = new Backoff(1000, 15_000);
    let first = true;
    let failures = 0;
    while (!stopped.signal.aborted) {
      try {
        const until = await opts.renew(stopped.signal);
        lockedUntil = until && until.getTime() > Date.now() ? until.getTime() : Date.now() + interval;
        failures = 0;
        backoff.reset();
        if (first) {
          first = false;
          resolveReady();
        }
        await sleep(interval, stopped.signal);
      } catch (error) {
        if (stopped.signal.aborted) return;
        failures++;
        if (error instanceof HttpStatusError && error.status === 404) {
          const reason =
            "GitHub no longer has this job (renewal answered 404): it was cancelled or given to another runner";
          opts.log.warn(reason);
          lost.abort(new Error(reason));
          rejectReady(new Error(reason));
          return;
        }
        if (first && failures >= 5) {
          rejectReady(error);
          lost.abort(error);
          return;
        }
        if (!first && Date.now() > lockedUntil + GRACE_AFTER_LOCK_MS) {
          const reason = `the job's lock could not be renewed since ${new Date(lockedUntil).toISOString()}: ${(error as Error).message}`;
          opts.log.error(reason);
          lost.abort(new Error(reason));
          return;
        }
        const wait = backoff.next();
        opts.log.warn({ err: (error as Error).message, retry_in_ms: wait }, "job renewal failed; retrying");
        await sleep(wait, stopped.signal);
      }
    }
  };
  void run();
  return { ready, lost: lost.signal, stop: () => stopped.abort() };
}
