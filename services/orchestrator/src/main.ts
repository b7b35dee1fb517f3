import { connectBus } from "@solstice/bus";
import { ConfigError, loadConfig, type OrchestratorConfig, orchestratorConfigSchema } from "@solstice/config";
import { createPgJobStore, migrate } from "@solstice/db";
import { startHealthServer } from "@solstice/health";
import { loadImageCatalog } from "@solstice/images";
import { FleetKeyError, type FleetKeyring, requireFleetKeyring } from "@solstice/protocol";
import { VmError } from "@solstice/vm";
import { pino } from "pino";
import { startHostJobCache } from "./host-job-cache.ts";
import { describePlatforms, hostPlatforms } from "./host-platforms.ts";
import { createOrchestratorMetrics } from "./metrics.ts";
import { startOrchestrator } from "./orchestrator.ts";
import { vmBackendFor } from "./vm-backend.ts";

const bootLog = pino({ name: "orchestrator" });
function readConfig(): OrchestratorConfig {
  try {
    return loadConfig("orchestrator", orchestratorConfigSchema);
  } catch (error) {
    bootLog.fatal(
      error instanceof ConfigError ? { problems: error.problems } : { err: error },
      "invalid configuration",
    );
    process.exit(2);
  }
}
const config = readConfig();
function readFleetKeys(): FleetKeyring {
  try {
    return requireFleetKeyring("orchestrator");
  } catch (error) {
    bootLog.fatal(
      error instanceof FleetKeyError ? { code: error.code, hint: error.hint } : { err: error },
      error instanceof Error ? error.message : "no fleet key",
    );
    process.exit(2);
  }
}
// Before anything connects: a host that cannot unseal secrets must not take jobs.
const keyring = readFleetKeys();
const log = pino({ name: "orchestrator", level: config.logLevel, base: { host: config.hostId } });

await migrate({ databaseUrl: config.databaseUrl, schema: config.databaseSchema, log });
const { store, close: closeStore } = createPgJobStore({
  databaseUrl: config.databaseUrl,
  schema: config.databaseSchema,
  log,
});
const bus = await connectBus({
  url: config.amqpUrl,
  namespace: config.namespace,
  log,
  // Called only after a loss, once the connection is back: by then `metrics` exists.
  onStateChange: (state) => {
    if (state === "connected") metrics.reconnected();
  },
});
const metrics = createOrchestratorMetrics({
  bus,
  capacity: config.capacity,
  running: () => orchestrator.running,
  warmPool: () => orchestrator.warmPool.sizes(),
  log,
});
// Before the backend: each VM's namespace forwards the cache's port, so it must be known.
const jobCache = await startHostJobCache(config, log).catch((error: unknown) => {
  log.fatal({ err: error }, error instanceof Error ? error.message : "the job cache did not start");
  process.exit(2);
});
const backend = (() => {
  try {
    return vmBackendFor(config, log, process.env, jobCache ? [jobCache.port] : []);
  } catch (error) {
    log.fatal(
      error instanceof ConfigError ? { problems: error.problems } : { err: error },
      "invalid VM backend configuration",
    );
    process.exit(2);
  }
})();
// What the host advertises: each served label's architecture and how it runs it. A label this host
// cannot run (its QEMU emulator is missing) stops it here, before it takes any job.
const platforms = await hostPlatforms({
  labels: Object.keys(config.capacity),
  catalog: await loadImageCatalog(),
  backend,
  log,
}).catch((error: unknown) => {
  log.fatal(
    error instanceof VmError ? { code: error.code, hint: error.hint } : { err: error },
    error instanceof Error ? error.message : "cannot run the labels in SOLSTICE_CAPACITY",
  );
  process.exit(2);
});
const orchestrator = await startOrchestrator({
  config,
  bus,
  store,
  backend,
  accelerator: describePlatforms(platforms) || config.accelerator,
  platforms,
  log,
  keyring,
  metrics,
  ...(jobCache ? { jobCache: jobCache.access } : {}),
});
const health = await startHealthServer({
  host: config.metricsHost,
  port: config.metricsPort,
  registry: metrics.registry,
  ready: () =>
    !bus.connected
      ? { ready: false, reason: "not connected to the broker" }
      : orchestrator.draining
        ? { ready: false, reason: "draining" }
        : { ready: true },
});
log.info({ port: health.port, address: config.metricsHost }, "serving /healthz, /readyz and /metrics");

// SIGTERM drains: no new jobs, running ones finish (up to the grace time), then exit.
let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, running: orchestrator.running.size }, "draining before exit");
    orchestrator
      .stop()
      .then(() => health.close())
      .then(() => jobCache?.close())
      .then(() => bus.close())
      .then(() => closeStore())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      });
  });
}
