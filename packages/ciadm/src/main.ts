import { Command, Option } from "commander";
import { pino } from "pino";
import { registerControl } from "./commands/control.ts";
import { migrateDatabase } from "./commands/db-migrate.ts";
import { registerDebug } from "./commands/debug.ts";
import { registerDlq } from "./commands/dlq.ts";
import { registerEnqueue } from "./commands/enqueue.ts";
import { registerHosts } from "./commands/hosts.ts";
import { registerImagesCommands } from "./commands/images.ts";
import { registerJobs } from "./commands/jobs.ts";
import { registerKeys } from "./commands/keys-generate.ts";
import { registerLogs } from "./commands/logs.ts";
import { runWorkflow } from "./commands/run.ts";
import { processTerminal } from "./terminal.ts";

const term = processTerminal();
const program = new Command("ciadm")
  .description("Solstice CI: run workflows in fresh VMs, and see and steer the fleet")
  .addOption(
    new Option("--log-level <level>", "structured log level on stderr")
      .choices(["fatal", "error", "warn", "info", "debug", "trace"])
      .default("warn"),
  )
  .showHelpAfterError();

const logger = () => pino({ level: program.opts<{ logLevel: string }>().logLevel }, pino.destination(2));

program
  .command("run")
  .description("run a workflow's jobs, each in a fresh VM, with live output; exits non-zero if a job fails")
  .argument("<workflow>", "the workflow file, e.g. .forgejo/workflows/ci.yml")
  .option("--job <id>", "run only this job (its key under `jobs:`)")
  .option("--include-uncommitted", "check out tracked uncommitted changes too, not only HEAD", false)
  .addOption(
    new Option("--accelerator <kind>", "how VMs run: auto probes KVM and falls back to TCG")
      .choices(["auto", "kvm", "tcg"])
      .default(process.env.SOLSTICE_ACCELERATOR ?? "auto"),
  )
  .option(
    "--image-cache <dir>",
    "where guest images are cached (default ~/.cache/solstice/images)",
    process.env.SOLSTICE_IMAGE_CACHE,
  )
  .option("--run-dir <dir>", "where VM run directories live", process.env.SOLSTICE_RUN_DIR)
  .option(
    "--amqp <url>",
    "run through the fleet on this broker instead of in this process",
    process.env.SOLSTICE_AMQP_URL,
  )
  .option("--namespace <name>", "the fleet's exchange and queue prefix", process.env.SOLSTICE_NAMESPACE ?? "solstice")
  .option(
    "--queue-timeout <seconds>",
    "through the fleet: give up on a job no host takes within this time",
    Number,
    600,
  )
  .option(
    "--secret <name>",
    "pass the secret NAME, its value read from the environment variable NAME (repeatable)",
    (name: string, names: string[]) => [...names, name],
    [] as string[],
  )
  .option("--secrets-file <file>", "read secrets from a file of NAME=VALUE lines")
  .action(async (workflow: string, opts) => {
    process.exitCode = await runWorkflow(workflow, { ...opts, queueTimeoutSeconds: opts.queueTimeout }, term, logger());
  });

program
  .command("db")
  .description("the PostgreSQL state")
  .command("migrate")
  .description("apply the schema migrations (safe while services start: they take the same lock)")
  .option("--database-url <url>", "PostgreSQL URL", process.env.SOLSTICE_DATABASE_URL)
  .option("--schema <name>", "PostgreSQL schema", process.env.SOLSTICE_DATABASE_SCHEMA ?? "public")
  .action(async (opts: { databaseUrl?: string; schema: string }) => {
    if (!opts.databaseUrl) throw new UsageError("no database: pass --database-url or set SOLSTICE_DATABASE_URL");
    const applied = await migrateDatabase(opts.databaseUrl, opts.schema, logger());
    term.out(`${applied === 0 ? "schema is up to date" : `applied ${applied} migration(s)`}\n`);
  });

registerImagesCommands(program, term, logger);
registerKeys(program, term);
registerDebug(program, term, logger);
registerJobs(program, term, logger);
registerHosts(program, term, logger);
registerControl(program, term, logger);
registerDlq(program, term, logger);
registerLogs(program, term, logger);
registerEnqueue(program, term, logger);

class UsageError extends Error {}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  term.err(`ciadm: ${message}\n`);
  const hint = (error as { hint?: unknown } | null)?.hint;
  if (typeof hint === "string") term.err(`hint: ${hint}\n`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
}
