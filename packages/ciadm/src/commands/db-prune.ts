import { createPgJobStore } from "@solstice/db";
import type { Logger } from "pino";

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30d`, `12h`, `90m` in milliseconds; undefined for anything else. */
export function parseAge(text: string): number | undefined {
  const match = /^(\d+)([mhd])$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

/**
 * `ciadm db prune --older-than 30d`: deletes finished jobs created before the cutoff, with their
 * steps, and resolves with how many. Queued and running jobs are never deleted, however old.
 */
export async function pruneDatabase(databaseUrl: string, schema: string, before: Date, log: Logger): Promise<number> {
  const { store, close } = createPgJobStore({ databaseUrl, schema, log, maxConnections: 1 });
  try {
    return await store.pruneJobs(before);
  } finally {
    await close();
  }
}
