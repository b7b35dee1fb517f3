/** Capped exponential backoff with ±20 % jitter, so many runners never retry in step. */
export class Backoff {
  private failures = 0;
  constructor(
    private readonly initialMs = 500,
    private readonly maxMs = 30_000,
  ) {}

  /** The delay before the next try; grows with each failure up to maxMs. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  reset(): void {
    this.failures = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
