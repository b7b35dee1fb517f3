import { createInterface } from "node:readline/promises";
import { connectBus } from "@solstice/bus";
import { loadConfig } from "@solstice/config";
import { loadFleetKeyring } from "@solstice/protocol";
import { Command } from "commander";
import { pino } from "pino";
import { forgejoRunnerConfigSchema } from "./config.ts";
import { startDaemon } from "./daemon.ts";
import { registerRunner } from "./register.ts";
import { readRunnerFile } from "./runner-file.ts";

const log = pino({ level: process.env.SOLSTICE_LOG_LEVEL ?? "info" });

async function ask(question: string, fallback?: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(fallback ? `${question} [${fallback}]: ` : `${question}: `)).trim();
    return answer || fallback || "";
  } finally {
    rl.close();
  }
}

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
    const interactive = flags.interactive !== false && process.stdin.isTTY;
    const need = async (key: string, question: string, fallback?: string) => {
      const value = flags[key];
      if (typeof value === "string" && value !== "") return value;
      if (interactive) return ask(question, fallback);
      if (fallback !== undefined) return fallback;
      throw new Error(`--${key} is required with --no-interactive`);
    };
    const instance = await need("instance", "Forgejo/Gitea instance URL");
    const token = await need("token", "Registration token");
    const name = await need("name", "Runner name", (await import("node:os")).hostname());
    const labels = (await need("labels", "Labels (comma-separated)", "solstice-linux:vm:debian-12"))
      .split(",")
      .map((l) => l.trim())
      .filter(Boolean);
    const runner = await registerRunner({ instance, token, name, labels, file: String(flags.file) });
    process.stderr.write(`registered ${runner.name} (${runner.uuid}) with ${runner.address}; wrote ${flags.file}\n`);
  });

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
    const runner = await readRunnerFile(config.runnerFile);
    const bus = await connectBus({ url: config.amqpUrl, namespace: config.namespace, log });
    const keyring = loadFleetKeyring();
    const daemon = await startDaemon({ config, runner, bus, log, ...(keyring ? { keyring } : {}) });
    const shutdown = async () => {
      log.info("stopping: no new tasks; waiting for running ones");
      await daemon.stop();
      await bus.close();
      process.exit(0);
    };
    process.once("SIGINT", () => void shutdown());
    process.once("SIGTERM", () => void shutdown());
  });

program.parseAsync().catch((error: unknown) => {
  log.error({ err: error }, (error as Error).message);
  process.exitCode = 1;
});
