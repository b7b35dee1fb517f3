import { hostname } from "node:os";
import { connectBus } from "@solstice/bus";
import { loadConfig } from "@solstice/config";
import { commaList, exitOnCliError, flagOrPrompt } from "@solstice/forge-relay";
import { startHealthServer } from "@solstice/health";
import { requireFleetKeyring } from "@solstice/protocol";
import { Command } from "commander";
import { pino } from "pino";
import { forgejoRunnerConfigSchema } from "./config.ts";
import { createRunnerFile } from "./create-runner-file.ts";
import { type Daemon, startDaemon } from "./daemon.ts";
import { registerRunner } from "./register.ts";
import { readRunnerFile } from "./runner-file.ts";
import { createRunnerMetrics } from "./runner-metrics.ts";

const log = pino({ level: process.env.SOLSTICE_LOG_LEVEL ?? "info" });

const program = new Command("solstice-forgejo-runner").description(
  "Runs Forgejo and Gitea Actions jobs in Solstice CI virtual machines",
);

program
  .command("register")
  .description("register with a Forgejo or Gitea instance and write the .runner file")
  .option("--instance <url>", "the forge's URL, e.g. https://forgejo.example.com")
  .option("--token <token>", "the registration token from the forge's Actions → Runners settings")
  .option("--name <name>", "the runner's name in the forge")
  .option("--labels <labels>", "comma-separated labels, name or name:vm:<fleet label>")
  .option("--no-interactive", "fail instead of asking for what is missing")
  .option("--file <path>", "where to write the registration", ".runner")
  .action(async (flags: Record<string, string | boolean | undefined>) => {
    const need = flagOrPrompt(flags);
    const instance = await need("instance", "Forgejo/Gitea instance URL");
    const token = await need("token", "Registration token");
    const name = await need("name", "Runner name", hostname());
    const labels = commaList(await need("labels", "Labels (comma-separated)", "solstice-linux:vm:debian-12"));
    const interrupted = new AbortController();
    const interrupt = () => interrupted.abort();
    process.once("SIGINT", interrupt);
    const runner = await registerRunner({
      instance,
      token,
      name,
      labels,
      file: String(flags.file),
      signal: interrupted.signal,
      onWaiting: (text) => process.stderr.write(`${text}\n`),
    }).finally(() => process.off("SIGINT", interrupt));
    process.stderr.write(`registered ${runner.name} (${runner.uuid}) with ${runner.address}; wrote ${flags.file}\n`);
  });

program
  .command("create-runner-file")
  .description(
    "write the .runner file from a secret registered on the Forgejo server (forgejo forgejo-cli actions register --secret)",
  )
  .requiredOption("--instance <url>", "the Forgejo instance URL")
  .requiredOption("--secret <hex>", "the 40 hexadecimal characters given to forgejo-cli actions register")
  .option("--name <name>", "the runner's name", hostname())
  .option("--labels <labels>", "comma-separated labels, name or name:vm:<fleet label>", "solstice-linux:vm:debian-12")
  .option("--connect", "declare to the forge with the new credentials to prove they work")
  .option("--file <path>", "where to write the registration", ".runner")
  .action(
    async (flags: {
      instance: string;
      secret: string;
      name: string;
      labels: string;
      connect?: boolean;
      file: string;
    }) => {
      const { runner, verified } = await createRunnerFile({
        instance: flags.instance,
        secret: flags.secret,
        name: flags.name,
        labels: commaList(flags.labels),
        file: flags.file,
        connect: flags.connect === true,
      });
      const check = flags.connect ? (verified ? "; the forge accepted it" : "; the forge is too old to check it") : "";
      process.stderr.write(`wrote ${flags.file} for runner ${runner.uuid}${check}\n`);
    },
  );

program
  .command("daemon")
  .description("take jobs from the forge and run them in the fleet")
  .option("--file <path>", "the .runner file (SOLSTICE_RUNNER_FILE)")
  .option("--capacity <n>", "tasks at once (SOLSTICE_CAPACITY)")
  .action(async (flags: { file?: string; capacity?: string }) => {
    const config = loadConfig("forgejo-runner", forgejoRunnerConfigSchema, process.env, {
      runnerFile: flags.file,
      capacity: flags.capacity,
    });
    const keyring = requireFleetKeyring("forgejo-runner");
    const runner = await readRunnerFile(config.runnerFile);
    const bus = await connectBus({ url: config.amqpUrl, namespace: config.namespace, log });
    let daemon: Daemon | undefined;
    const metrics = createRunnerMetrics({
      capacity: config.capacity,
      running: () => daemon?.active ?? 0,
      brokerConnected: () => bus.connected,
    });
    // Served before Declare, so a forge that is slow to answer shows as alive but not ready.
    const health = await startHealthServer({
      host: config.metricsHost,
      port: config.metricsPort,
      registry: metrics.registry,
      ready: () => daemon?.readiness() ?? { ready: false, reason: "declaring to the forge" },
    });
    log.info({ port: health.port, address: config.metricsHost }, "serving /healthz, /readyz and /metrics");
    daemon = await startDaemon({ config, runner, bus, log, keyring, metrics });
    const running = daemon;
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal, running: running.active }, "stopping: no new tasks; waiting for running ones");
      running
        .stop()
        .then(() => health.close())
        .then(() => bus.close())
        .then(() => process.exit(0))
        .catch((error: unknown) => {
          log.error({ err: error }, "shutdown failed");
          process.exit(1);
        });
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
  });

program.parseAsync().catch(exitOnCliError);
