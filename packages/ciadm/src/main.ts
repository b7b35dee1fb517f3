import { Command, InvalidArgumentError, Option } from "commander";
import { pino } from "pino";
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
  .argument(
    "[workflow]",
    "the workflow file (default: .solstice/workflow.kdl, else the only one in .forgejo/workflows, .gitea/workflows or .github/workflows)",
  )
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
    "--actions-url <url>",
    "where `uses: owner/name@ref` actions are fetched from",
    process.env.SOLSTICE_ACTIONS_URL ?? "https://github.com",
  )
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
  .option(
    "--map-label <from=to>",
    "run jobs whose runs-on is FROM on this host's image TO, e.g. illumos-stable=tiny (repeatable)",
    collectPairs("--map-label"),
    {},
  )
  .option("--event <name>", "the event that triggers the run, as github.event_name", "workflow_dispatch")
  .option("--event-payload <file>", "a JSON file with the event's payload, as github.event")
  .option(
    "--parallel <jobs>",
    "how many jobs may run at once (default: 1 in this process, each matrix's max-parallel through the fleet)",
    positiveInteger("--parallel"),
  )
  .action(async (workflow: string | undefined, opts) => {
    const { runWorkflow } = await import("./commands/run.ts");
    process.exitCode = await runWorkflow(
      workflow,
      { ...opts, queueTimeoutSeconds: opts.queueTimeout, leaseSeconds: opts.lease },
      term,
      logger(),
    );
  });

const db = program.command("db").description("the PostgreSQL state");
db.command("migrate")
  .description("apply the schema migrations (safe while services start: they take the same lock)")
  .option("--database-url <url>", "PostgreSQL URL", process.env.SOLSTICE_DATABASE_URL)
  .option("--schema <name>", "PostgreSQL schema", process.env.SOLSTICE_DATABASE_SCHEMA ?? "public")
  .action(async (opts: { databaseUrl?: string; schema: string }) => {
    if (!opts.databaseUrl) throw new UsageError("no database: pass --database-url or set SOLSTICE_DATABASE_URL");
    const { migrateDatabase } = await import("./commands/db-migrate.ts");
    const applied = await migrateDatabase(opts.databaseUrl, opts.schema, logger());
    term.out(`${applied === 0 ? "schema is up to date" : `applied ${applied} migration(s)`}\n`);
  });
db.command("prune")
  .description("delete finished jobs created before a time, with their steps (queued and running jobs stay)")
  .requiredOption("--older-than <age>", "how old a finished job must be to go: 30d, 12h or 90m")
  .option("--database-url <url>", "PostgreSQL URL", process.env.SOLSTICE_DATABASE_URL)
  .option("--schema <name>", "PostgreSQL schema", process.env.SOLSTICE_DATABASE_SCHEMA ?? "public")
  .option("--json", "machine-readable output", false)
  .action(async (opts: { olderThan: string; databaseUrl?: string; schema: string; json: boolean }) => {
    if (!opts.databaseUrl) throw new UsageError("no database: pass --database-url or set SOLSTICE_DATABASE_URL");
    const { parseAge, pruneDatabase } = await import("./commands/db-prune.ts");
    const ageMs = parseAge(opts.olderThan);
    if (ageMs === undefined) {
      throw new UsageError(
        `--older-than "${opts.olderThan}" is not an age: use a number and m, h or d (30d, 12h, 90m)`,
      );
    }
    const before = new Date(Date.now() - ageMs);
    const deleted = await pruneDatabase(opts.databaseUrl, opts.schema, before, logger());
    term.out(
      opts.json
        ? `${JSON.stringify({ deleted, before: before.toISOString() })}\n`
        : `deleted ${deleted} finished job(s) created before ${before.toISOString()}\n`,
    );
  });

// The fleet commands' modules load the broker, database and image code they need. Loading only
// the one asked for keeps `ciadm jobs` from paying for all of them (about a second on a small
// machine); help and unknown commands load every one, so all are listed.
type Registration = (program: Command) => void;
const commandModules: ReadonlyArray<{ names: readonly string[]; load: () => Promise<Registration> }> = [
  {
    names: ["images"],
    load: async () => {
      const { registerImagesCommands } = await import("./commands/images.ts");
      return (p) => registerImagesCommands(p, term, logger);
    },
  },
  {
    names: ["keys"],
    load: async () => {
      const { registerKeys } = await import("./commands/keys-generate.ts");
      return (p) => registerKeys(p, term);
    },
  },
  {
    names: ["debug"],
    load: async () => {
      const { registerDebug } = await import("./commands/debug.ts");
      return (p) => registerDebug(p, term, logger);
    },
  },
  {
    names: ["jobs", "job"],
    load: async () => {
      const { registerJobs } = await import("./commands/jobs.ts");
      return (p) => registerJobs(p, term, logger);
    },
  },
  {
    names: ["hosts", "labels"],
    load: async () => {
      const { registerHosts } = await import("./commands/hosts.ts");
      return (p) => registerHosts(p, term, logger);
    },
  },
  {
    names: ["cancel", "drain", "undrain"],
    load: async () => {
      const { registerControl } = await import("./commands/control.ts");
      return (p) => registerControl(p, term, logger);
    },
  },
  {
    names: ["dlq"],
    load: async () => {
      const { registerDlq } = await import("./commands/dlq.ts");
      return (p) => registerDlq(p, term, logger);
    },
  },
  {
    names: ["logs"],
    load: async () => {
      const { registerLogs } = await import("./commands/logs.ts");
      return (p) => registerLogs(p, term, logger);
    },
  },
  {
    names: ["enqueue"],
    load: async () => {
      const { registerEnqueue } = await import("./commands/enqueue.ts");
      return (p) => registerEnqueue(p, term, logger);
    },
  },
  {
    names: ["workflow"],
    load: async () => {
      const { registerWorkflow } = await import("./commands/workflow.ts");
      return (p) => registerWorkflow(p, term);
    },
  },
];

/** The command word of the command line: the first argument that is not a global option or its value. */
function requestedCommand(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--log-level") i++;
    else if (!arg.startsWith("-")) return arg;
  }
  return undefined;
}

const asked = requestedCommand(process.argv);
const definedHere = program.commands.some((c) => c.name() === asked);
const owner = commandModules.find((m) => asked !== undefined && m.names.includes(asked));
const toLoad = definedHere ? [] : owner ? [owner] : commandModules;
for (const register of await Promise.all(toLoad.map((m) => m.load()))) register(program);

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
