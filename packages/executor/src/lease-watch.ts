import { create, type JobEvent, type JobRequest, JobRequestSchema } from "@solstice/protocol";
import type { Logger } from "pino";

/** Missed heartbeats after which the owner is told that the host has gone quiet. */
const SILENT_HEARTBEATS = 3;

export interface LeaseWatchOptions {
  /** The job's first attempt, as it will be published. */
  readonly request: JobRequest;
  /** How long a running attempt may stay silent before it is declared lost. Default 60000. */
  readonly leaseMs?: number;
  /** Attempts in all, the first included; a lost last attempt fails the job. Default 3. */
  readonly maxAttempts?: number;
  /** Publishes one attempt of the job (the bus's confirmed, mandatory publish). */
  publish(request: JobRequest): Promise<void>;
  /** Fences a lost attempt: broadcasts Cancel for that attempt only, in case its host is only cut off. */
  cancel(jobId: string, attempt: number, reason: string): Promise<void>;
  /** Told when an attempt is lost: `next` is the attempt now published, or undefined when none is left. */
  onLost(lost: number, next: number | undefined, reason: string): void;
  /**
   * Told once per silence when an accepted attempt has sent nothing for three of its host's
   * heartbeat intervals (as Accepted announced them): the host has likely stopped, long before the
   * lease runs out. Not called for hosts that announce no interval.
   */
  onSilent?(attempt: number, silentMs: number, heartbeatIntervalMs: number): void;
  readonly log: Logger;
}

/**
 * The owner's side of the lease rule: once an attempt is accepted, each of its events renews the
 * lease; an attempt silent for the lease time is declared lost, cancelled (fencing) and the job is
 * republished as the next attempt, up to `maxAttempts`. Events of any other attempt are refused,
 * so a late host's output never mixes with the live attempt's. The orchestrator gives up on its own
 * jobs after `lease − 2 × heartbeat` without the broker, before this fires, so two attempts are
 * never live at once.
 */
export class LeaseWatch {
  private current: JobRequest;
  private timer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  /** The live attempt's host heartbeat interval, from its Accepted; 0 when unknown. */
  private heartbeatIntervalMs = 0;
  private stopped = false;
  private readonly leaseMs: number;
  private readonly maxAttempts: number;

  constructor(private readonly opts: LeaseWatchOptions) {
    this.current = opts.request;
    this.leaseMs = opts.leaseMs ?? 60_000;
    this.maxAttempts = opts.maxAttempts ?? 3;
  }

  /** The attempt the owner follows now. */
  get attempt(): number {
    return this.current.attempt;
  }

  /** Publishes the first attempt. */
  start(): Promise<void> {
    return this.opts.publish(this.current);
  }

  /** True when `event` belongs to the live attempt (and renews its lease); false to ignore it. */
  observe(event: JobEvent): boolean {
    if (this.stopped || event.jobId !== this.current.jobId || event.attempt !== this.current.attempt) return false;
    if (event.body.case === "accepted") this.heartbeatIntervalMs = event.body.value.heartbeatIntervalMs;
    if (event.body.case === "jobFinished") this.stop();
    else this.renew();
    return true;
  }

  /** Stops watching (the job finished, or the owner gave up on it). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.silenceTimer);
  }

  private renew(): void {
    clearTimeout(this.timer);
    clearTimeout(this.silenceTimer);
    this.timer = setTimeout(() => this.expire(), this.leaseMs);
    const heartbeat = this.heartbeatIntervalMs;
    const silentMs = SILENT_HEARTBEATS * heartbeat;
    if (heartbeat > 0 && silentMs < this.leaseMs && this.opts.onSilent) {
      const attempt = this.current.attempt;
      this.silenceTimer = setTimeout(() => this.opts.onSilent?.(attempt, silentMs, heartbeat), silentMs);
    }
  }

  private expire(): void {
    clearTimeout(this.silenceTimer);
    this.heartbeatIntervalMs = 0;
    const lost = this.current.attempt;
    const reason = `attempt ${lost} sent no event for ${Math.round(this.leaseMs / 1000)} s: its host is lost or cut off`;
    this.opts.log.warn({ job_id: this.current.jobId, attempt: lost }, reason);
    this.opts
      .cancel(this.current.jobId, lost, reason)
      .catch((error: unknown) => this.opts.log.error({ err: error }, "could not fence the lost attempt"));
    if (lost >= this.maxAttempts) {
      this.stop();
      this.opts.onLost(lost, undefined, `${reason}; no attempts left (${this.maxAttempts} allowed)`);
      return;
    }
    this.current = create(JobRequestSchema, { ...this.current, attempt: lost + 1 });
    this.opts.onLost(lost, lost + 1, reason);
    this.opts.publish(this.current).catch((error: unknown) => {
      this.stop();
      this.opts.onLost(lost + 1, undefined, `could not publish attempt ${lost + 1}: ${String(error)}`);
    });
  }
}
