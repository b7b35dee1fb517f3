import { connectBus } from "@solstice/bus";
import { ConfigError, loadConfig, type OrchestratorConfig, orchestratorConfigSchema } from "@solstice/config";
import { createPgJobStore, migrate } from "@solstice/db";
import { createQemuBackend } from "@solstice/vm";
import { pino } from "pino";
import { startOrchestrator } from "./orchestrator.ts";

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
const log = pino({ name: "orchestrator", level: config.logLevel, base: { host: config.hostId } });

await migrate({ databaseUrl: config.databaseUrl, schema: config.databaseSchema, log });
const { store, close: closeStore } = createPgJobStore({
  databaseUrl: config.databaseUrl,
  schema: config.databaseSchema,
  log,
});
const bus = await connectBus({ url: config.amqpUrl, namespace: config.namespace, log });
const backend = createQemuBackend({
  log,
  accelerator: config.accelerator,
  ...(config.runDir ? { runRoot: config.runDir } : {}),
  ...(config.imageCache ? { imageCacheDir: config.imageCache } : {}),
});
const orchestrator = await startOrchestrator({ config, bus, store, backend, accelerator: config.accelerator, log });

// SIGTERM drains: no new jobs, running ones finish (up to the grace time), then exit.
let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, running: orchestrator.running.size }, "draining before exit");
    orchestrator
      .stop()
      .then(() => bus.close())
      .then(() => closeStore())
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      });
  });
}
