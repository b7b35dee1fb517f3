import { connectBus } from "@solstice/bus";
import { loadConfig, orchestratorConfigSchema } from "@solstice/config";
import type { JobStore } from "@solstice/db";
import { type Orchestrator, startOrchestrator } from "@solstice/orchestrator";
import type { Logger } from "pino";
import { nullJobRunner } from "./null-job.ts";

/** One simulated host: where it connects and how it takes and times its jobs. */
export interface NullHostOptions {
  /** One broker URL or several, comma-separated (SOLSTICE_AMQP_URL). */
  amqpUrl: string;
  databaseUrl: string;
  schema: string;
  namespace: string;
  hostId: string;
  /** SOLSTICE_CAPACITY, e.g. `l0=1,l1=1`. */
  capacity: string;
  /** SOLSTICE_JOB_TAKING; the default (`auto`) when absent. */
  taking?: "reserve" | "poll";
  jobMs: number;
  leaseMs: number;
  heartbeatMs: number;
  /** The hosts of one process may share a store (a pool), which a real fleet would not. */
  store: JobStore;
  log: Logger;
  /** Told each time a job really runs here (not when a delivery is answered from the record). */
  onRun?: (jobId: string, attempt: number) => void;
}

export interface NullHost {
  readonly orchestrator: Orchestrator;
  /** Stops the orchestrator (no grace: jobs are cancelled) and closes its broker connection. */
  close(): Promise<void>;
}

/**
 * FOR BENCHMARKS AND TESTS. A real orchestrator — its own broker connection, job consumer, slots,
 * heartbeats, lease rule and database records — whose jobs boot nothing (null-job.ts), for
 * bench:fleet's simulated hosts and the cluster fault tests alike.
 */
export async function startNullHost(options: NullHostOptions): Promise<NullHost> {
  const { log } = options;
  const bus = await connectBus({ url: options.amqpUrl, namespace: options.namespace, log, clientName: options.hostId });
  const config = loadConfig("orchestrator", orchestratorConfigSchema, {
    SOLSTICE_AMQP_URL: options.amqpUrl,
    SOLSTICE_DATABASE_URL: options.databaseUrl,
    SOLSTICE_DATABASE_SCHEMA: options.schema,
    SOLSTICE_NAMESPACE: options.namespace,
    SOLSTICE_HOST_ID: options.hostId,
    SOLSTICE_CAPACITY: options.capacity,
    ...(options.taking ? { SOLSTICE_JOB_TAKING: options.taking } : {}),
    SOLSTICE_LEASE_MS: String(options.leaseMs),
    SOLSTICE_HEARTBEAT_INTERVAL_MS: String(options.heartbeatMs),
  });
  const orchestrator = await startOrchestrator({
    config,
    bus,
    store: options.store,
    backend: {
      name: "null",
      ensureImage: () => Promise.reject(new Error("boots nothing")),
      boot: () => Promise.reject(new Error("boots nothing")),
      reapOrphans: async () => 0,
    },
    accelerator: "none",
    log,
    runJob: (run) => {
      options.onRun?.(run.job.jobId, run.job.attempt);
      return nullJobRunner(options.jobMs)(run);
    },
  });
  return {
    orchestrator,
    async close() {
      await orchestrator.stop(0);
      await bus.close();
    },
  };
}
