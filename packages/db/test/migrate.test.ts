import assert from "node:assert/strict";
import { test } from "node:test";
import { DbError, migrate } from "@solstice/db";
import {
  committedMigrationCount,
  DATABASE_URL,
  dropSchema,
  silentLog,
  uniqueSchema,
  withClient,
} from "./test-database.ts";

const MIGRATION_LOCK_KEY = "6012143270693004133";

async function tablesIn(schema: string): Promise<string[]> {
  return withClient(async (client) => {
    const result = await client.query<{ table_name: string }>(
      "select table_name from information_schema.tables where table_schema = $1 order by table_name",
      [schema],
    );
    return result.rows.map((r) => r.table_name);
  });
}

test("migrate creates every table in an empty schema, and a second run applies nothing", {
  timeout: 30_000,
}, async () => {
  const schema = uniqueSchema();
  try {
    const first = await migrate({ databaseUrl: DATABASE_URL, schema, log: silentLog });
    assert.equal(first.applied, await committedMigrationCount());
    assert.deepEqual(await tablesIn(schema), ["__drizzle_migrations", "debug_sessions", "hosts", "job_steps", "jobs"]);
    const second = await migrate({ databaseUrl: DATABASE_URL, schema, log: silentLog });
    assert.equal(second.applied, 0);
  } finally {
    await dropSchema(schema);
  }
});

test("two services migrating the same fresh schema at once both succeed and apply each migration once", {
  timeout: 30_000,
}, async () => {
  const schema = uniqueSchema();
  try {
    const results = await Promise.all([
      migrate({ databaseUrl: DATABASE_URL, schema, log: silentLog }),
      migrate({ databaseUrl: DATABASE_URL, schema, log: silentLog }),
    ]);
    const count = await committedMigrationCount();
    assert.deepEqual(results.map((r) => r.applied).sort(), [0, count]);
    const recorded = await withClient((client) =>
      client.query<{ n: number }>(`select count(*)::int as n from "${schema}"."__drizzle_migrations"`),
    );
    assert.equal(recorded.rows[0]?.n, count);
    assert.deepEqual(await tablesIn(schema), ["__drizzle_migrations", "debug_sessions", "hosts", "job_steps", "jobs"]);
  } finally {
    await dropSchema(schema);
  }
});

test("migrate gives up with migration_lock_timeout while another process holds the migration lock", {
  timeout: 30_000,
}, async () => {
  const schema = uniqueSchema();
  try {
    await withClient(async (holder) => {
      await holder.query("select pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
      await assert.rejects(
        migrate({ databaseUrl: DATABASE_URL, schema, log: silentLog, lockTimeoutMs: 300 }),
        (err: unknown) => err instanceof DbError && err.code === "migration_lock_timeout",
      );
    });
    assert.deepEqual(await tablesIn(schema), []);
  } finally {
    await dropSchema(schema);
  }
});

test("migrate refuses a schema name that is not a plain identifier", { timeout: 10_000 }, async () => {
  await assert.rejects(
    migrate({ databaseUrl: DATABASE_URL, schema: 'x"; drop table jobs; --', log: silentLog }),
    (err: unknown) => err instanceof DbError && err.code === "invalid_schema_name",
  );
});

test("aborting a migration that waits for the lock stops it with an aborted error", { timeout: 30_000 }, async () => {
  const schema = uniqueSchema();
  try {
    await withClient(async (holder) => {
      await holder.query("select pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
      await assert.rejects(
        migrate({ databaseUrl: DATABASE_URL, schema, log: silentLog, signal: AbortSignal.timeout(300) }),
        (err: unknown) => err instanceof DbError && err.code === "aborted",
      );
    });
    assert.deepEqual(await tablesIn(schema), []);
  } finally {
    await dropSchema(schema);
  }
});
