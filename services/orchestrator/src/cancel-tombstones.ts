/**
 * Cancels heard for jobs this host does not run. A Cancel is a broadcast: when it arrives while
 * the job still waits in its label queue, no host runs it, and without a memory of it the job
 * would start later as if nothing had happened. Each host keeps recent ones (bounded, and for a
 * day at most) and ends such a job as cancelled when it takes it.
 */
export class CancelTombstones {
  private readonly byJob = new Map<string, { attempt: number; reason: string; at: number }>();

  constructor(
    private readonly maxEntries = 10_000,
    private readonly ttlMs = 24 * 60 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** `attempt` 0 cancels every attempt of the job. */
  remember(jobId: string, attempt: number, reason: string): void {
    this.byJob.delete(jobId);
    this.byJob.set(jobId, { attempt, reason, at: this.now() });
    // A Map iterates in insertion order: the first entries are the oldest.
    for (const oldest of this.byJob.keys()) {
      if (this.byJob.size <= this.maxEntries) break;
      this.byJob.delete(oldest);
    }
  }

  /** Why this attempt was cancelled before it started, if it was. */
  reasonFor(jobId: string, attempt: number): string | undefined {
    const entry = this.byJob.get(jobId);
    if (entry === undefined) return undefined;
    if (this.now() - entry.at > this.ttlMs) {
      this.byJob.delete(jobId);
      return undefined;
    }
    return entry.attempt === 0 || entry.attempt === attempt ? entry.reason : undefined;
  }
}
