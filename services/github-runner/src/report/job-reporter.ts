import { Backoff, sleep } from "@solstice/forge-relay";
import type { Logger } from "pino";
import type { FeedbackChannel } from "./feedback-channel.ts";
import type { JobLog } from "./job-log.ts";

export interface JobReporterOptions {
  log: JobLog;
  channel: FeedbackChannel;
  logger: Logger;
  /** How often live lines and changed states go out. Default 500, as the official runner's queue. */
  intervalMs?: number;
  /** How long the final report keeps retrying a GitHub that does not take it. Default 300000. */
  finalDeadlineMs?: number;
}

/**
 * Sends a job's timeline and live lines while it runs and its logs at the end. Live batches
 * that fail are dropped (the uploaded log has them); state updates that fail are sent again on
 * the next tick, so GitHub ends up with every step's last state.
 */
export class JobReporter {
  private readonly stopTicking = new AbortController();
  private readonly ticking: Promise<void>;

  constructor(private readonly opts: JobReporterOptions) {
    this.ticking = this.tick();
  }

  private async flush(): Promise<void> {
    const { log, channel } = this.opts;
    // States first: a step is shown started before its lines arrive.
    const changed = log.takeChanged();
    if (changed.length > 0) {
      try {
        await channel.updateRecords(log, changed);
      } catch (error) {
        log.markChanged(changed);
        throw error;
      }
    }
    for (const batch of log.takeLive()) {
      try {
        await channel.sendLive(batch.recordId, batch.lines, batch.startLine);
      } catch (error) {
        this.opts.logger.warn(
          { err: (error as Error).message },
          "live lines not delivered; they stay in the uploaded log",
        );
      }
    }
  }

  private async tick(): Promise<void> {
    const interval = this.opts.intervalMs ?? 500;
    const backoff = new Backoff(interval, 30_000);
    while (!this.stopTicking.signal.aborted) {
      let wait = interval;
      try {
        await this.flush();
        backoff.reset();
      } catch (error) {
        wait = backoff.next();
        this.opts.logger.warn({ err: (error as Error).message, retry_in_ms: wait }, "timeline update failed");
      }
      await sleep(wait, this.stopTicking.signal);
    }
  }

  /** Stops without a final report: the job is no longer ours to report on. */
  async abandon(): Promise<void> {
    this.stopTicking.abort();
    await this.ticking;
    this.opts.channel.close();
  }

  /** Stops ticking, sends the final states and uploads the logs, retrying until the deadline. */
  async finish(): Promise<boolean> {
    this.stopTicking.abort();
    await this.ticking;
    const deadline = Date.now() + (this.opts.finalDeadlineMs ?? 300_000);
    const backoff = new Backoff(200, 10_000);
    let flushed = false;
    try {
      for (;;) {
        try {
          if (!flushed) {
            await this.flush();
            flushed = true;
          }
          await this.opts.channel.uploadLogs(this.opts.log);
          return true;
        } catch (error) {
          this.opts.logger.warn({ err: (error as Error).message }, "final report to GitHub failed; retrying");
        }
        if (Date.now() > deadline) {
          this.opts.logger.error("GitHub did not take the job's final report in time");
          return false;
        }
        await sleep(backoff.next());
      }
    } finally {
      this.opts.channel.close();
    }
  }
}
