import { Command, InvalidArgumentError, Option } from "commander";
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
import { registerWorkflow } from "./commands/workflow.ts";
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

/** Collects repeated `NAME=VALUE` options into one object; a later NAME wins. */
function collectPairs(flag: string) {
  return (pair: string, pairs: Record<string, string>) => {
    const at = pair.indexOf("=");
    if (at <= 0) throw new InvalidArgumentError(`${flag} takes NAME=VALUE, not \`${pair}\``);
    return { ...pairs, [pair.slice(0, at)]: pair.slice(at + 1) };
  };
}

function positiveInteger(flag: string) {
  return (text: string) => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`${flag} takes a whole number ≥ 1`);
    return value;
  };
}

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
    "--lease <seconds>",
    "through the fleet: an attempt that sends no event for this long is lost, cancelled and retried (default 60)",
    positiveInteger("--lease"),
  )
  .option(
    "--max-attempts <n>",
    "through the fleet: attempts in all before a lost job fails (default 3)",
    positiveInteger("--max-attempts"),
  )
  .option(
    "--secret <name>",
    "pass the secret NAME, its value read from the environment variable NAME (repeatable)",
    (name: string, names: string[]) => [...names, name],
    [] as string[],
  )
  .option("--secrets-file <file>", "read secrets from a file of NAME=VALUE lines")
  .option("--input <name=value>", "a workflow_dispatch input (repeatable)", collectPairs("--input"), {})
  .option("--var <name=value>", "a configuration variable, read as vars.NAME (repeatable)", collectPairs("--var"), {})
  .option("--event <name>", "the event that triggers the run, as github.event_name", "workflow_dispatch")
  .option("--event-payload <file>", "a JSON file with the event's payload, as github.event")
  .option(
    "--parallel <jobs>",
    "how many jobs may run at once (default: 1 in this process, each matrix's max-parallel through the fleet)",
    positiveInteger("--parallel"),
  )
  .action(async (workflow: string, opts) => {
    process.exitCode = await runWorkflow(
      workflow,
      { ...opts, queueTimeoutSeconds: opts.queueTimeout, leaseSeconds: opts.lease },
      term,
      logger(),
    );
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
registerWorkflow(program, term);

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
