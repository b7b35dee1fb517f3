import { hostname } from "node:os";
import { type Bus, connectBus } from "@solstice/bus";
import { hostActionProvider, JobEventStream, LeaseWatch, type LocalCheckoutSource, runJob } from "@solstice/executor";
import {
  ControlSchema,
  create,
  type FleetKeyring,
  type JobEvent,
  type JobRequest,
  Outcome,
  SCHEMA_VERSION,
} from "@solstice/protocol";
import { createQemuBackend } from "@solstice/vm";
import type { Logger } from "pino";
import type { JobPrinter, PrintedJob } from "./job-printer.ts";
import type { Terminal } from "./terminal.ts";

/** Runs one planned job and feeds its events to a printer; resolves with the printed summary. */
export interface JobRunner {
  /** Who follows the jobs' events: the routing-key prefix of their events. */
  readonly owner: string;
  run(request: JobRequest, printer: JobPrinter, signal: AbortSignal): Promise<PrintedJob>;
  close(): Promise<void>;
}

export function ownerName(): string {
  return `ciadm-${hostname()
    .replace(/[^a-z0-9-]/gi, "-")
    .toLowerCase()}-${process.pid}`;
}

/**
 * The embedded default: the orchestrator's executor in this process, the qemu backend on this
 * machine, and the terminal as the only event sink. No broker, no database.
 */
export async function localJobRunner(opts: {
  log: Logger;
  term: Terminal;
  accelerator: "auto" | "kvm" | "tcg";
  imageCache?: string;
  runDir?: string;
  localCheckout?: LocalCheckoutSource;
  /** Unseals the jobs' secrets in this process. */
  keyring?: FleetKeyring;
  /** Where `uses: owner/name@ref` actions are fetched from. */
  actionsUrl: string;
}): Promise<JobRunner> {
  const actions = hostActionProvider({ log: opts.log, defaultUrl: opts.actionsUrl });
  const backend = createQemuBackend({
    log: opts.log,
    accelerator: opts.accelerator,
    ...(opts.imageCache ? { imageCacheDir: opts.imageCache } : {}),
    ...(opts.runDir ? { runRoot: opts.runDir } : {}),
  });
  await backend.reapOrphans();
  return {
    owner: ownerName(),
    async run(request, printer, signal) {
      let printed: PrintedJob | undefined;
      const events = new JobEventStream(request.jobId, request.attempt, async (event) => {
        printed = printer.handle(event) ?? printed;
      });
      const result = await runJob({
        job: request,
        backend,
        events,
        signal,
        log: opts.log.child({ job_id: request.jobId, attempt: request.attempt }),
        status: (text) => opts.term.status(text),
        ...(opts.localCheckout ? { localCheckout: opts.localCheckout } : {}),
        ...(opts.keyring ? { keyring: opts.keyring } : {}),
        actions,
      });
      return (
        printed ?? { name: request.jobName, result: result.result, reason: result.reason, steps: [], durationMs: 0 }
      );
    },
    close: async () => {},
  };
}

/**
 * Through the fleet: the job is published on the bus, an orchestrator serving its label runs
 * it, and this process follows its events. Interrupting sends a Cancel to the fleet.
 */
export async function fleetJobRunner(opts: {
  amqpUrl: string;
  namespace: string;
  log: Logger;
  term: Terminal;
  /** How long a job may wait for a host before this run gives up on it. */
  queueTimeoutMs: number;
  /** The lease rule: a running attempt silent this long is lost and retried. Default 60000. */
  leaseMs?: number;
  /** Attempts in all before a lost job fails. Default 3. */
  maxAttempts?: number;
}): Promise<JobRunner> {
  const bus: Bus = await connectBus({ url: opts.amqpUrl, namespace: opts.namespace, log: opts.log });
  return {
    owner: ownerName(),
    async run(request, printer, signal) {
      let settle: ((printed: PrintedJob) => void) | undefined;
      const finished = new Promise<PrintedJob>((resolve) => {
        settle = resolve;
      });
      let accepted = false;
      const sendCancel = (attempt: number, reason: string) =>
        bus.publishControl(
          create(ControlSchema, {
            schemaVersion: SCHEMA_VERSION,
            command: { case: "cancel", value: { jobId: request.jobId, attempt, reason } },
          }),
        );
      const lease = new LeaseWatch({
        request,
        log: opts.log,
        ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}),
        ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}),
        publish: (attempt) => bus.publishJob(attempt),
        cancel: (_jobId, attempt, reason) => sendCancel(attempt, reason),
        onLost: (_lost, next, reason) => {
          opts.term.err(`job ${request.jobName}: ${reason}${next ? `; retrying as attempt ${next}` : ""}\n`);
          if (next === undefined) {
            settle?.({ name: request.jobName, result: Outcome.FAILURE, reason, steps: [], durationMs: 0 });
          }
        },
      });
      const follower = await bus.consumeEvents({
        jobId: request.jobId,
        onEvent: async (event: JobEvent) => {
          if (!lease.observe(event)) return;
          if (event.body.case === "accepted") accepted = true;
          const printed = printer.handle(event);
          if (printed) settle?.(printed);
        },
      });
      const cancel = () => {
        const reason = signal.reason instanceof Error ? signal.reason.message : "cancelled";
        sendCancel(lease.attempt, reason).catch((error: unknown) =>
          opts.log.error({ err: error }, "could not send the cancel"),
        );
      };
      signal.addEventListener("abort", cancel, { once: true });
      // Ctrl-C while the event queue was being set up.
      if (signal.aborted) cancel();
      const queueTimer = setTimeout(() => {
        if (accepted) return;
        opts.term.err(
          `no host took job ${request.jobId} within ${Math.round(opts.queueTimeoutMs / 1000)} s; cancelling it\n`,
        );
        cancel();
        settle?.({
          name: request.jobName,
          result: Outcome.FAILURE,
          reason: `no host serving "${request.runsOn}" took the job`,
          steps: [],
          durationMs: 0,
        });
      }, opts.queueTimeoutMs);
      try {
        await lease.start();
        opts.term.status(`queued job ${request.jobId} for label ${request.runsOn}`);
        return await finished;
      } finally {
        clearTimeout(queueTimer);
        lease.stop();
        signal.removeEventListener("abort", cancel);
        await follower.stop();
      }
    },
    close: () => bus.close(),
  };
}
