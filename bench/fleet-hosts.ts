/**
 * One process of simulated orchestrator hosts for bench/fleet.ts (started by it with fork): each
 * host is a real orchestrator — its own broker connection, job consumer, slots, heartbeats, lease
 * rule and database records — whose jobs boot nothing (bench/null-job.ts). The hosts of a process
 * share one database pool, which a real fleet would not; the broker sees one connection per host.
 * Told `{ stop: true }`, it stops every host and exits.
 */
import { createPgJobStore } from "@solstice/db";
import { pino } from "pino";
import { startNullHost } from "./null-host.ts";

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
    // A hundred hosts starting at once on a busy machine wait their turn for the pool's connections.
    connectTimeoutMs: 60_000,
  });
  const hosts = await Promise.all(spec.hostIds.map((hostId) => startNullHost({ ...spec, hostId, store, log })));
  process.send({ ready: hosts.length });
  process.on("message", (message: { stop?: boolean }) => {
    if (!message.stop) return;
    void (async () => {
      await Promise.all(hosts.map((h) => h.close()));
      await closeStore();
      process.exit(0);
    })();
  });
}
