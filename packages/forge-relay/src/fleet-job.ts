import { type Bus, UnroutableLabelError } from "@solstice/bus";
import { LeaseWatch } from "@solstice/executor";
import {
  ControlSchema,
  create,
  EventOrder,
  type JobEvent,
  type JobRequest,
  Outcome,
  SCHEMA_VERSION,
} from "@solstice/protocol";
import type { Logger } from "pino";
import type { OwnerEvents } from "./owner-events.ts";

export interface FleetJobOptions {
  /** The job's first attempt. */
  request: JobRequest;
  bus: Pick<Bus, "publishJob" | "publishControl">;
  events: OwnerEvents;
  log: Logger;
  /** The lease rule: a running attempt silent this long is lost. Default 60000. */
  leaseMs?: number;
  /** Attempts in all before a lost job fails. Default 3. */
  maxAttempts?: number;
  /** How long the job may wait for a host to accept it. Default 600000. */
  queueTimeoutMs?: number;
  /** After a cancel, how long to wait for the job's own JobFinished before giving up on it. Default 60000. */
  cancelGraceMs?: number;
  /** Aborting cancels the job in the fleet (`Control.Cancel`); its reason is the cancel's reason. */
  signal?: AbortSignal;
  /** The live attempt's events, in `seq` order, without duplicates; JobFinished included. */
  onEvent(event: JobEvent): void;
  /** What the forge's log should say about the job's handling: a lost attempt, a retry, a timeout. */
  onNotice(text: string): void;
}

export interface FleetJobResult {
  result: Outcome;
  /** Why, when the job did not succeed. */
  reason: string;
  outputs: Record<string, string>;
  /** False when the job ended before any host accepted it (unroutable, queue timeout, cancelled while queued). */
  accepted: boolean;
}

/**
 * Runs one job in the fleet as its owner: publishes it, follows its events, and supervises it
 * (lease, queue bound, cancellation). Never throws; every way the job can end is a result.
 */
export async function runFleetJob(opts: FleetJobOptions): Promise<FleetJobResult> {
  const { request, bus, log } = opts;
  const cancelGraceMs = opts.cancelGraceMs ?? 60_000;
  const queueTimeoutMs = opts.queueTimeoutMs ?? 600_000;
  let settle: (result: FleetJobResult) => void = () => {};
  const ended = new Promise<FleetJobResult>((resolve) => {
    settle = resolve;
  });
  let accepted = false;
  let done = false;
  const finish = (result: Omit<FleetJobResult, "accepted">) => {
    if (done) return;
    done = true;
    settle({ ...result, accepted });
  };

  const sendCancel = (attempt: number, reason: string) =>
    bus.publishControl(
      create(ControlSchema, {
        schemaVersion: SCHEMA_VERSION,
        command: { case: "cancel", value: { jobId: request.jobId, attempt, reason } },
      }),
    );
  let order = new EventOrder();
  const lease = new LeaseWatch({
    request,
    log,
    ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}),
    ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}),
    publish: (attempt) => bus.publishJob(attempt),
    cancel: (_jobId, attempt, reason) => sendCancel(attempt, reason),
    onSilent: (attempt, silentMs, heartbeatMs) => {
      const leaseS = Math.round((opts.leaseMs ?? 60_000) / 1000);
      opts.onNotice(
        `the host running attempt ${attempt} has sent nothing for ${Math.round(silentMs / 1000)} s (it sends a heartbeat every ${Math.round(heartbeatMs / 1000)} s): it may have stopped; the attempt is given up after ${leaseS} s of silence`,
      );
    },
    onLost: (_lost, next, reason) => {
      // A new attempt numbers its events from 1 again.
      order = new EventOrder();
      opts.onNotice(next ? `${reason}; retrying as attempt ${next}` : reason);
      if (next === undefined) finish({ result: Outcome.FAILURE, reason, outputs: {} });
    },
  });

  const unfollow = opts.events.follow(request.jobId, (event) => {
    if (done || !lease.observe(event)) return;
    for (const e of order.push(event)) {
      if (e.body.case === "accepted") accepted = true;
      opts.onEvent(e);
      if (e.body.case === "jobFinished") {
        finish({ result: e.body.value.result, reason: e.body.value.reason, outputs: { ...e.body.value.outputs } });
      }
    }
  });

  let graceTimer: NodeJS.Timeout | undefined;
  const cancel = (reason: string) => {
    sendCancel(lease.attempt, reason).catch((error: unknown) =>
      log.error({ err: error }, "Control.Cancel could not be published"),
    );
    clearTimeout(graceTimer);
    graceTimer = setTimeout(() => {
      lease.stop();
      finish({ result: Outcome.CANCELLED, reason, outputs: {} });
    }, cancelGraceMs);
  };
  const onAbort = () => {
    const reason = opts.signal?.reason instanceof Error ? opts.signal.reason.message : String(opts.signal?.reason);
    cancel(reason);
  };
  const queueTimer = setTimeout(() => {
    if (accepted) return;
    const reason = `no host serving "${request.runsOn}" took the job within ${Math.round(queueTimeoutMs / 1000)} s`;
    opts.onNotice(`${reason}; cancelling it`);
    cancel(reason);
    lease.stop();
    finish({ result: Outcome.FAILURE, reason, outputs: {} });
  }, queueTimeoutMs);

  try {
    try {
      await lease.start();
    } catch (error) {
      const reason =
        error instanceof UnroutableLabelError
          ? error.message
          : `the job could not be handed to the fleet: ${(error as Error).message}`;
      lease.stop();
      finish({ result: Outcome.FAILURE, reason, outputs: {} });
      return await ended;
    }
    log.info({ job_id: request.jobId, runs_on: request.runsOn }, "job published");
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
    return await ended;
  } finally {
    clearTimeout(queueTimer);
    clearTimeout(graceTimer);
    lease.stop();
    opts.signal?.removeEventListener("abort", onAbort);
    unfollow();
  }
}
