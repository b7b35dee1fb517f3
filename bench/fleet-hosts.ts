/**
 * One process of simulated orchestrator hosts for bench/fleet.ts (started by it with fork): each
 * host is a real orchestrator — its own broker connection, job consumer, slots, heartbeats, lease
 * rule and database records — whose jobs boot nothing (bench/null-job.ts). The hosts of a process
 * share one database pool, which a real fleet would not; the broker sees one connection per host.
 * Told `{ stop: true }`, it stops every host and exits.
 */
import { connectBus } from "@solstice/bus";
import { loadConfig, orchestratorConfigSchema } from "@solstice/config";
import { createPgJobStore } from "@solstice/db";
import { type Orchestrator, startOrchestrator } from "@solstice/orchestrator";
import { pino } from "pino";
import { nullJobRunner } from "./null-job.ts";

/** What bench/fleet.ts tells a process of hosts (argv[2], JSON): one program, so no parsing. */
export interface HostsSpec {
  amqpUrl: string;
  databaseUrl: string;
  schema: string;
  namespace: string;
  hostIds: string[];
  /** SOLSTICE_CAPACITY of every host. */
  capacity: string;
  taking: "reserve" | "poll";
  jobMs: number;
  leaseMs: number;
  heartbeatMs: number;
}

if (process.send) {
  const spec = JSON.parse(process.argv[2] ?? "{}") as HostsSpec;
  const log = pino({ level: process.env.SOLSTICE_BENCH_LOG ?? "silent" });
  const { store, close: closeStore } = createPgJobStore({
    databaseUrl: spec.databaseUrl,
    schema: spec.schema,
    log,
    maxConnections: 8,
  });
  const runJob = nullJobRunner(spec.jobMs);
  const hosts = await Promise.all(
    spec.hostIds.map(async (hostId) => {
      const bus = await connectBus({ url: spec.amqpUrl, namespace: spec.namespace, log, clientName: hostId });
      const config = loadConfig("orchestrator", orchestratorConfigSchema, {
        SOLSTICE_AMQP_URL: spec.amqpUrl,
        SOLSTICE_DATABASE_URL: spec.databaseUrl,
        SOLSTICE_DATABASE_SCHEMA: spec.schema,
        SOLSTICE_NAMESPACE: spec.namespace,
        SOLSTICE_HOST_ID: hostId,
        SOLSTICE_CAPACITY: spec.capacity,
        SOLSTICE_JOB_TAKING: spec.taking,
        SOLSTICE_LEASE_MS: String(spec.leaseMs),
        SOLSTICE_HEARTBEAT_INTERVAL_MS: String(spec.heartbeatMs),
      });
      const orchestrator: Orchestrator = await startOrchestrator({
        config,
        bus,
        store,
        backend: {
          name: "null",
          ensureImage: () => Promise.reject(new Error("boots nothing")),
          boot: () => Promise.reject(new Error("boots nothing")),
          reapOrphans: async () => 0,
        },
        accelerator: "none",
        log,
        runJob,
      });
      return { bus, orchestrator };
    }),
  );
  process.send({ ready: hosts.length });
  process.on("message", (message: { stop?: boolean }) => {
    if (!message.stop) return;
    void (async () => {
      await Promise.all(hosts.map((h) => h.orchestrator.stop(0)));
      await Promise.all(hosts.map((h) => h.bus.close()));
      await closeStore();
      process.exit(0);
    })();
  });
}
