import { drizzle } from "drizzle-orm/node-postgres";
import { migrate as drizzleMigrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import type { Logger } from "pino";
import { checkSchemaName, DbError } from "./db-error.ts";

/** "Solstice" in ASCII: every service that migrates takes this one lock, whatever the schema. */
const MIGRATION_LOCK_KEY = "6012143270693004133";
const MIGRATIONS_TABLE = "__drizzle_migrations";
const migrationsFolder = new URL("../drizzle", import.meta.url).pathname;

export interface MigrateOptions {
  databaseUrl: string;
  /** PostgreSQL schema that receives the tables and the migrations table. Default `public`. */
  schema?: string;
  log: Logger;
  /** How long to wait for another process's migration to finish. Default 120000. */
  lockTimeoutMs?: number;
  /** How long to wait for a connection. Default 10000. */
  connectTimeoutMs?: number;
  /** Aborting closes the connection; a migration in flight is rolled back by PostgreSQL. */
  signal?: AbortSignal;
}

/**
 * Applies the committed migrations (packages/db/drizzle) that the schema lacks. Services that start
 * at the same moment queue on a PostgreSQL advisory lock, so each migration runs exactly once.
 */
export async function migrate(opts: MigrateOptions): Promise<{ applied: number }> {
  const schema = checkSchemaName(opts.schema ?? "public");
  const log = opts.log.child({ schema });
  opts.signal?.throwIfAborted();
  const client = new pg.Client({
    connectionString: opts.databaseUrl,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
  });
  // A connection error after connect() would otherwise be an unhandled 'error' event.
  client.on("error", (err) => log.warn({ err: err.message }, "migration connection failed"));
  const onAbort = () => void client.end().catch(() => undefined);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await client.connect();
    await lock(client, opts.lockTimeoutMs ?? 120_000);
    try {
      await client.query(`create schema if not exists "${schema}"`);
      await client.query(`set search_path to "${schema}"`);
      const before = await countApplied(client, schema);
      await drizzleMigrate(drizzle(client), {
        migrationsFolder,
        migrationsSchema: schema,
        migrationsTable: MIGRATIONS_TABLE,
      });
      const applied = (await countApplied(client, schema)) - before;
      log.info({ applied }, applied > 0 ? "database migrated" : "database schema up to date");
      return { applied };
    } finally {
      // If this fails the connection is gone, and PostgreSQL released the lock with it.
      await client
        .query("select pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY])
        .catch((err: unknown) => log.debug({ err: messageOf(err) }, "migration lock released with the connection"));
    }
  } catch (cause) {
    if (opts.signal?.aborted) throw new DbError("aborted", `migration of schema "${schema}" aborted`, { cause });
    if (cause instanceof DbError) throw cause;
    throw new DbError("migration_failed", `migrating schema "${schema}" failed: ${messageOf(cause)}`, {
      hint: "check that the database is reachable and the user may create tables in that schema",
      cause,
    });
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await client.end().catch(() => undefined);
  }
}

async function lock(client: pg.Client, timeoutMs: number): Promise<void> {
  await client.query(`set lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
  try {
    await client.query("select pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
  } catch (cause) {
    if ((cause as { code?: unknown }).code === "55P03") {
      throw new DbError("migration_lock_timeout", `another process held the migration lock for over ${timeoutMs} ms`, {
        hint: "a migration may be stuck; look for a long-running session in pg_stat_activity",
        cause,
      });
    }
    throw cause;
  }
  await client.query("reset lock_timeout");
}

async function countApplied(client: pg.Client, schema: string): Promise<number> {
  const exists = await client.query<{ present: boolean }>("select to_regclass($1) is not null as present", [
    `"${schema}"."${MIGRATIONS_TABLE}"`,
  ]);
  if (exists.rows[0]?.present !== true) return 0;
  const result = await client.query<{ n: number }>(`select count(*)::int as n from "${schema}"."${MIGRATIONS_TABLE}"`);
  return result.rows[0]?.n ?? 0;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
