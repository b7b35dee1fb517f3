import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import pg from "pg";
import { pino } from "pino";

export const DATABASE_URL = process.env.SOLSTICE_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export const silentLog = pino({ level: "silent" });

/** A schema name no other test uses. */
export function uniqueSchema(): string {
  return `t_${randomUUID().replaceAll("-", "")}`;
}

export async function withClient<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

export async function dropSchema(schema: string): Promise<void> {
  await withClient((client) => client.query(`drop schema if exists "${schema}" cascade`));
}

/** How many migrations are committed under packages/db/drizzle. */
export async function committedMigrationCount(): Promise<number> {
  const journal = JSON.parse(await readFile(new URL("../drizzle/meta/_journal.json", import.meta.url), "utf8")) as {
    entries: unknown[];
  };
  return journal.entries.length;
}
