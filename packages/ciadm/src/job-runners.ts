import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { type Bus, connectBus } from "@solstice/bus";
import { hostActionProvider, JobEventStream, type LocalCheckoutSource, runJob } from "@solstice/executor";
import { followOwnerEvents, type OwnerEvents, runFleetJob } from "@solstice/forge-relay";
import type { FleetKeyring, JobEvent, JobRequest } from "@solstice/protocol";
import { createQemuBackend } from "@solstice/vm";
import type { Logger } from "pino";
import type { JobPrinter, PrintedJob } from "./job-printer.ts";
import { startLocalJobCache } from "./local-job-cache.ts";
import type { Terminal } from "./terminal.ts";

/** Runs one planned job and feeds its events to a printer; resolves with the printed summary. */
export interface JobRunner {
  /** Who follows the jobs' events: the routing-key prefix of their events. */
  readonly owner: string;
  run(request: JobRequest, printer: JobPrinter, signal: AbortSignal): Promise<PrintedJob>;
  close(): Promise<void>;
}

/**
 * A `ciadm run`'s owner name: the host, for a person reading the broker's queues, and a random
 * part, since process ids repeat (every container's first process is 1) and two runs must never
 * share an owner queue.
 */
export function ownerName(): string {
  const host = hostname()
    .replace(/[^a-z0-9-]/gi, "-")
    .toLowerCase()
    .slice(0, 60);
  return `ciadm-${host}-${randomUUID().slice(0, 8)}`;
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
  /** Whether to serve the job cache (local-job-cache.ts) to the jobs. */
  jobCache: boolean;
}): Promise<JobRunner> {
  const actions = hostActionProvider({ log: opts.log, defaultUrl: opts.actionsUrl });
  // Before the backend: each VM's namespace forwards the cache's port.
  const jobCache = opts.jobCache ? await startLocalJobCache(opts.log, opts.term) : undefined;
  const backend = createQemuBackend({
    log: opts.log,
    accelerator: opts.accelerator,
    hostPorts: jobCache ? [jobCache.port] : [],
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
        ...(jobCache ? { jobCache: jobCache.access } : {}),
      });
      return (
        printed ?? { name: request.jobName, result: result.result, reason: result.reason, steps: [], durationMs: 0 }
      );
    },
    close: async () => {
      await jobCache?.close();
    },
  };
}

/**
 * Through the fleet: the job is published on the bus, an orchestrator serving its label runs
 * it, and this process follows its events as their owner, on a durable queue of its own that is
 * there before the first job is published. A broker outage therefore loses nothing: what the hosts
 * publish meanwhile waits in the queue, and the consumer comes back with the connection. The queue
 * expires soon after this process ends (its owner name is never used again). Interrupting cancels
 * the jobs in the fleet and ends within `cancelGraceMs`, whatever the broker does.
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
  /** After Ctrl-C, how long to wait for a job's own end before giving up on it. Default 10000. */
  cancelGraceMs?: number;
}): Promise<JobRunner> {
  const { term } = opts;
  let lostAt: number | undefined;
  const bus: Bus = await connectBus({
    url: opts.amqpUrl,
    namespace: opts.namespace,
    // Reconnect warnings are for service logs; a person reading a run gets one line each way.
    log: opts.log.isLevelEnabled("info") ? opts.log : opts.log.child({}, { level: "error" }),
    ownerQueueExpiryMs: CIADM_OWNER_QUEUE_EXPIRY_MS,
    clientName: "ciadm run",
    onStateChange: (state) => {
      if (state === "disconnected") {
        lostAt = Date.now();
        term.err("lost the broker; reconnecting…\n");
      } else if (lostAt !== undefined) {
        term.err(`reconnected to the broker after ${Math.round((Date.now() - lostAt) / 1000)} s\n`);
        lostAt = undefined;
      }
    },
  });
  const owner = ownerName();
  let events: OwnerEvents;
  try {
    events = await followOwnerEvents(bus, owner);
  } catch (error) {
    await bus.close();
    throw error;
  }
  return {
    owner,
    async run(request, printer, signal) {
      let printed: PrintedJob | undefined;
      const result = await runFleetJob({
        request,
        bus,
        events,
        log: opts.log,
        queueTimeoutMs: opts.queueTimeoutMs,
        cancelGraceMs: opts.cancelGraceMs ?? 10_000,
        signal,
        ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}),
        ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}),
        onEvent: (event: JobEvent) => {
          if (event.body.case === "accepted") term.status(`job ${request.jobName} running on ${event.body.value.host}`);
          printed = printer.handle(event) ?? printed;
        },
        onNotice: (text) => term.err(`job ${request.jobName}: ${text}\n`),
      });
      return (
        printed ?? {
          name: request.jobName,
          result: result.result,
          reason: result.reason,
          steps: [],
          durationMs: 0,
          outputs: result.outputs,
        }
      );
    },
    async close() {
      await events.stop();
      await bus.close();
    },
  };
}

// A `ciadm run`'s owner name is never used again, so its queue need not wait long for it; long
// enough that a run cut off from the broker for a few minutes still finds its events.
const CIADM_OWNER_QUEUE_EXPIRY_MS = 10 * 60_000;
