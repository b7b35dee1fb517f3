import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { JobCacheAccess } from "@solstice/executor";
import { CacheError, defaultJobCacheDir, guestCacheAccess, startJobCacheServer } from "@solstice/job-cache";
import { GUEST_GATEWAY_ADDRESS } from "@solstice/vm";
import type { Logger } from "pino";
import { z } from "zod";
import type { Terminal } from "./terminal.ts";

const settingsSchema = z.object({
  /** Where the local cache keeps its entries (default ~/.cache/solstice/job-cache/ciadm). */
  SOLSTICE_JOB_CACHE_DIR: z.string().min(1).optional(),
  /** Its bound in MiB (default 10240, as an orchestrator's); 0 turns it off. */
  SOLSTICE_JOB_CACHE_MB: z.coerce.number().int().nonnegative().default(10_240),
});

/** `ciadm run`'s own job cache: the orchestrator's cache service, in this process. */
export interface LocalJobCache {
  readonly port: number;
  readonly access: JobCacheAccess;
  close(): Promise<void>;
}

/**
 * Starts the job cache a local run's jobs use as a Forgejo job uses its host's, so `actions/cache`
 * behaves as through the forge and a later run restores what an earlier one saved. When another
 * `ciadm run` holds the directory, this run gets one of its own that goes when it ends.
 */
export async function startLocalJobCache(
  log: Logger,
  term: Pick<Terminal, "err">,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LocalJobCache | undefined> {
  const settings = settingsSchema.parse(env);
  if (settings.SOLSTICE_JOB_CACHE_MB === 0) return undefined;
  const start = (dir: string) =>
    startJobCacheServer({ dir, maxBytes: settings.SOLSTICE_JOB_CACHE_MB * 1024 * 1024, port: 0, log });
  let temporary: string | undefined;
  let server: Awaited<ReturnType<typeof start>>;
  try {
    server = await start(settings.SOLSTICE_JOB_CACHE_DIR ?? defaultJobCacheDir("ciadm"));
  } catch (error) {
    if (!(error instanceof CacheError && error.code === "conflict")) throw error;
    temporary = await mkdtemp(path.join(tmpdir(), "solstice-job-cache-"));
    term.err(`note: ${error.message}; this run's job cache is its own and goes when it ends\n`);
    server = await start(temporary);
  }
  return {
    port: server.port,
    access: guestCacheAccess(server, GUEST_GATEWAY_ADDRESS),
    async close() {
      await server.close();
      if (temporary) await rm(temporary, { recursive: true, force: true });
    },
  };
}
