import { migrate } from "@solstice/db";
import type { Logger } from "pino";

/** `ciadm db migrate`: the same locked migration every service runs at start-up. */
export async function migrateDatabase(databaseUrl: string, schema: string, log: Logger): Promise<number> {
  const { applied } = await migrate({ databaseUrl, schema, log });
  return applied;
}
