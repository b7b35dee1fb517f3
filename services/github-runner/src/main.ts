import { hostname } from "node:os";
import { connectBus } from "@solstice/bus";
import { loadConfig } from "@solstice/config";
import { ask, commaList, exitOnCliError, flagOrPrompt } from "@solstice/forge-relay";
import { startHealthServer } from "@solstice/health";
import { loadFleetKeyring } from "@solstice/protocol";
import { Command } from "commander";
import { pino } from "pino";
import { Counter, collectDefaultMetrics, Registry } from "prom-client";
import { githubRunnerConfigSchema } from "./config.ts";
import { startDaemon } from "./daemon.ts";
import { decodeJitConfig } from "./registration/jit-config.ts";
import { checkLabels, jitLabelWarning, registerRunner, removeRunner } from "./registration/registration.ts";
import { isConfigured, type RunnerRegistration, readRegistration } from "./registration/runner-files.ts";

const log = pino({ level: process.env.SOLSTICE_LOG_LEVEL ?? "info" });

const program = new Command("solstice-github-runner").description(
  "Runs GitHub Actions jobs in Solstice CI virtual machines, as a self-hosted runner",
);

program
  .command("register")
  .description("register with a GitHub repository, organization or enterprise and write the runner's files")
  .option("--url <url>", "the repository or organization, e.g. https://github.com/acme/app")
  .option("--token <token>", "the registration token from Settings → Actions → Runners → New self-hosted runner")
  .option("--name <name>", "the runner's name in GitHub")
  .option("--labels <labels>", "comma-separated labels, name or name:vm:<fleet label>, e.g. omnios:vm:omnios-r151054")
  .option("--runner-group <group>", "the runner group to join (default: the default group)")
  .option("--dir <path>", "where the .runner, .credentials and .credentials_rsaparams files go", ".")
  .option("--replace", "take over an existing runner of the same name")
  .option("--ephemeral", "take one job, then GitHub removes the runner")
  .option("--no-interactive", "fail instead of asking for what is missing")
  .action(async (flags: Record<string, string | boolean | undefined>) => {
    const need = flagOrPrompt(flags);
    const url = await need("url", "GitHub repository or organization URL");
    // From the environment rather than a flag where it can be: pnpm echoes its command line.
    const token = process.env.SOLSTICE_GITHUB_REGISTRATION_TOKEN || (await need("token", "Registration token"));
    const name = await need("name", "Runner name", hostname());
    const labels = commaList(await need("labels", "Labels (comma-separated, name or name:vm:<fleet label>)"));
    const dir = String(flags.dir);
    const reg = await registerRunner({
      url,
      token,
      name,
      labels,
      dir,
      log,
      ...(typeof flags.runnerGroup === "string" ? { runnerGroup: flags.runnerGroup } : {}),
      ...(flags.replace === true ? { replace: true } : {}),
      ...(flags.ephemeral === true ? { ephemeral: true } : {}),
    });
    process.stderr.write(
      `registered ${reg.settings.agentName} (id ${reg.settings.agentId}) with ${reg.settings.gitHubUrl}; wrote ${dir}/.runner, .credentials, .credentials_rsaparams\n`,
    );
  });

program
  .command("remove")
  .description("delete the runner in GitHub and its local files")
  .option("--token <token>", "the removal token from the runner's page in GitHub (a registration token works too)")
  .option("--dir <path>", "where the runner's files are", ".")
  .action(async (flags: { token?: string; dir: string }) => {
    const token =
      flags.token ||
      process.env.SOLSTICE_GITHUB_REMOVAL_TOKEN ||
      (process.stdin.isTTY ? await ask("Removal token") : "");
    if (!token) throw new Error("--token is required");
    await removeRunner({ dir: flags.dir, token, log });
    process.stderr.write(`removed the runner registered in ${flags.dir}\n`);
  });

program
  .command("daemon")
  .description("listen for GitHub's jobs and run them in the fleet")
  .option("--dir <path>", "where the runner's files are (SOLSTICE_RUNNER_DIR)")
  .option("--jitconfig <config>", "run one job as a just-in-time runner (SOLSTICE_JITCONFIG); writes no files")
  .option("--labels <labels>", "a JIT runner's labels, name or name:vm:<fleet label> (SOLSTICE_LABELS)")
  .action(async (flags: { dir?: string; jitconfig?: string; labels?: string }) => {
    const config = loadConfig("github-runner", githubRunnerConfigSchema, process.env, {
      runnerDir: flags.dir,
      jitconfig: flags.jitconfig,
      labels: flags.labels,
    });
    log.level = config.logLevel;
    let registration: RunnerRegistration;
    if (config.jitconfig) {
      if (!config.labels)
        throw new Error("a JIT runner needs --labels (SOLSTICE_LABELS): GitHub's config does not carry them");
      registration = decodeJitConfig(config.jitconfig, commaList(config.labels));
      const warning = jitLabelWarning(checkLabels(registration.settings.solsticeLabels));
      if (warning) log.warn(warning);
    } else {
      if (!(await isConfigured(config.runnerDir)) && config.githubUrl && config.registrationToken) {
        if (!config.labels) throw new Error("SOLSTICE_LABELS is needed to register from SOLSTICE_GITHUB_URL");
        await registerRunner({
          url: config.githubUrl,
          token: config.registrationToken,
          name: config.runnerName ?? hostname(),
          labels: commaList(config.labels),
          dir: config.runnerDir,
          log,
          ...(config.runnerGroup ? { runnerGroup: config.runnerGroup } : {}),
        });
      }
      registration = await readRegistration(config.runnerDir);
    }
    const bus = await connectBus({ url: config.amqpUrl, namespace: config.namespace, log });
    const keyring = loadFleetKeyring();
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const jobs = new Counter({
      name: "solstice_github_jobs_total",
      help: "GitHub jobs finished, by the conclusion reported to GitHub",
      labelNames: ["conclusion"],
      registers: [registry],
    });
    const daemon = await startDaemon({
      config,
      registration,
      bus,
      log,
      onJobDone: (conclusion) => jobs.inc({ conclusion }),
      ...(keyring ? { keyring } : {}),
    });
    const health =
      config.metricsPort > 0
        ? await startHealthServer({
            host: config.metricsHost,
            port: config.metricsPort,
            registry,
            ready: () =>
              !bus.connected
                ? { ready: false, reason: "the broker is not connected" }
                : daemon.listening
                  ? { ready: true }
                  : { ready: false, reason: "no session with GitHub yet" },
          })
        : undefined;
    const shutdown = async (code: number) => {
      await daemon.stop();
      await health?.close();
      await bus.close();
      process.exit(code);
    };
    process.once("SIGINT", () => void shutdown(0));
    process.once("SIGTERM", () => void shutdown(0));
    const why = await daemon.done;
    if (why.error) log.error({ err: why.error }, why.error.message);
    await shutdown(why.reason === "fatal" ? 1 : 0);
  });

program.parseAsync().catch(exitOnCliError);
