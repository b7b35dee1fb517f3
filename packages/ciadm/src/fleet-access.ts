import type { Bus } from "@solstice/bus";
import type { JobStore } from "@solstice/db";
import { type Command, Option } from "commander";
import type { Logger } from "pino";

/** Where the fleet's broker and database are; every fleet command takes these options. */
export interface FleetOptions {
  readonly amqp?: string;
  readonly namespace: string;
  readonly databaseUrl?: string;
  readonly schema: string;
}

/** A failure a person fixes outside ciadm (a URL, a service that is down); carries a hint. */
export class CliError extends Error {
  override readonly name = "CliError";
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Adds the broker and database options, with their SOLSTICE_* defaults. */
export function withFleetOptions(command: Command, need: { bus?: boolean; db?: boolean }): Command {
  if (need.bus) {
    command
      .addOption(new Option("--amqp <url>", "the fleet's broker").default(process.env.SOLSTICE_AMQP_URL))
      .addOption(
        new Option("--namespace <name>", "the fleet's exchange and queue prefix").default(
          process.env.SOLSTICE_NAMESPACE ?? "solstice",
        ),
      );
  }
  if (need.db) {
    command
      .addOption(
        new Option("--database-url <url>", "the fleet's PostgreSQL").default(process.env.SOLSTICE_DATABASE_URL),
      )
      .addOption(
        new Option("--schema <name>", "PostgreSQL schema").default(process.env.SOLSTICE_DATABASE_SCHEMA ?? "public"),
      );
  }
  return command;
}

/** A URL as it may be shown: without its password. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(an unparsable URL)";
  }
}

/** Connects to the broker within a short deadline, or fails naming the URL and what to check. */
export async function openBus(opts: FleetOptions, log: Logger, connectTimeoutMs = 5_000): Promise<Bus> {
  if (!opts.amqp) {
    throw new CliError(
      "no_broker",
      "no broker configured",
      "pass --amqp amqp://user:pass@host:5672 or set SOLSTICE_AMQP_URL",
    );
  }
  // Loaded here, not at the top: a command that needs only the database does not load the broker's code.
  const { connectBus } = await import("@solstice/bus");
  try {
    return await connectBus({
      url: opts.amqp,
      namespace: opts.namespace,
      // The retries before the deadline are the bus's business; the person sees the final error.
      log: log.level === "warn" ? log.child({}, { level: "error" }) : log,
      connectTimeoutMs,
      publishTimeoutMs: 10_000,
      clientName: "ciadm",
    });
  } catch (error) {
    throw new CliError(
      "broker_unreachable",
      `cannot reach the broker at ${redactUrl(opts.amqp)}: ${error instanceof Error ? error.message : String(error)}`,
      "check --amqp / SOLSTICE_AMQP_URL and that RabbitMQ runs there (scripts/services.sh starts a local one)",
      { cause: error },
    );
  }
}

/**
 * Opens the job store and proves the database answers (and is migrated) with one query, so a
 * wrong URL fails here, with the URL and a hint, rather than as a driver error later.
 */
export async function openStore(opts: FleetOptions, log: Logger): Promise<{ store: JobStore; close(): Promise<void> }> {
  if (!opts.databaseUrl) {
    throw new CliError(
      "no_database",
      "no database configured",
      "pass --database-url postgres://user@host:5432/db or set SOLSTICE_DATABASE_URL",
    );
  }
  const { createPgJobStore } = await import("@solstice/db");
  const opened = createPgJobStore({
    databaseUrl: opts.databaseUrl,
    schema: opts.schema,
    log,
    maxConnections: 2,
    connectTimeoutMs: 5_000,
  });
  try {
    await opened.store.listHosts();
    return opened;
  } catch (error) {
    await opened.close().catch(() => {
      // The pool never connected; nothing to release.
    });
    const code =
      (error as { code?: unknown; cause?: { code?: unknown } }).cause?.code ?? (error as { code?: unknown }).code;
    if (code === "42P01") {
      throw new CliError(
        "database_not_migrated",
        `the database at ${redactUrl(opts.databaseUrl)} (schema ${opts.schema}) has no Solstice tables`,
        `run \`ciadm db migrate --database-url … --schema ${opts.schema}\`, or check --schema`,
        { cause: error },
      );
    }
    throw new CliError(
      "database_unreachable",
      `cannot reach PostgreSQL at ${redactUrl(opts.databaseUrl)}: ${rootMessage(error)}`,
      "check --database-url / SOLSTICE_DATABASE_URL and that PostgreSQL runs there (scripts/services.sh starts a local one)",
      { cause: error },
    );
  }
}

/** Runs `body` with the job store open, and closes it afterwards whatever happens. */
export async function withStore<T>(opts: FleetOptions, log: Logger, body: (store: JobStore) => Promise<T>): Promise<T> {
  const db = await openStore(opts, log);
  try {
    return await body(db.store);
  } finally {
    await db.close().catch((error: unknown) => log.warn({ err: error }, "closing the database pool failed"));
  }
}

/** Runs `body` connected to the broker, and disconnects afterwards whatever happens. */
export async function withBus<T>(opts: FleetOptions, log: Logger, body: (bus: Bus) => Promise<T>): Promise<T> {
  const bus = await openBus(opts, log);
  try {
    return await body(bus);
  } finally {
    await bus.close().catch((error: unknown) => log.warn({ err: error }, "closing the broker connection failed"));
  }
}

/** Both: the database first, since it fails faster and names a more common mistake. */
export function withBusAndStore<T>(
  opts: FleetOptions,
  log: Logger,
  body: (bus: Bus, store: JobStore) => Promise<T>,
): Promise<T> {
  return withStore(opts, log, (store) => withBus(opts, log, (bus) => body(bus, store)));
}

/** The driver's own words (ECONNREFUSED, authentication failed) rather than the query wrapper's. */
function rootMessage(error: unknown): string {
  let inner = error;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  const text =
    inner instanceof Error ? inner.message || (inner as { code?: string }).code || inner.name : String(inner);
  return text || "connection failed";
}
