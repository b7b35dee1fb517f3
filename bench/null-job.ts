import type { JobResult, RunJobOptions } from "@solstice/executor";
import { Outcome } from "@solstice/protocol";

/**
 * FOR BENCHMARKS ONLY. A job runner that boots nothing: it heartbeats like the executor, waits
 * `durationMs` (or until cancelled) and reports the job finished. Everything around it — the bus,
 * the job consumer, the slots, the lease, the events and the database — is the orchestrator's own.
 */
export function nullJobRunner(durationMs: number) {
  return async (options: RunJobOptions): Promise<JobResult> => {
    const { events, signal } = options;
    const heartbeat = setInterval(() => {
      events.heartbeat().catch(() => {
        // A lost heartbeat is the lease watch's business, not the benchmark's.
      });
    }, options.heartbeatIntervalMs ?? 5_000);
    let result = Outcome.SUCCESS;
    let reason = "";
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, durationMs);
        signal.addEventListener(
          "abort",
          () => {
            clearTimeout(timer);
            reject(signal.reason);
          },
          { once: true },
        );
      });
    } catch (error) {
      result = Outcome.CANCELLED;
      reason = error instanceof Error ? error.message : String(error);
    } finally {
      clearInterval(heartbeat);
    }
    await events.jobFinished(result, reason);
    await events.drain();
    return { result, reason, steps: [] };
  };
}
