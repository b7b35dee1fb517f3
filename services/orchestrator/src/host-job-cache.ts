import path from "node:path";
import type { OrchestratorConfig } from "@solstice/config";
import type { JobCacheAccess } from "@solstice/executor";
import { defaultJobCacheDir, guestCacheAccess, startJobCacheServer } from "@solstice/job-cache";
import { GUEST_GATEWAY_ADDRESS } from "@solstice/vm";
import type { Logger } from "pino";

/** This host's job cache, one per orchestrator (docs/decisions/0007). */
export interface HostJobCache {
  /** The loopback port each VM's namespace forwards to the host: the only host port a guest reaches. */
  readonly port: number;
  /** What the executor opens per job. */
  readonly access: JobCacheAccess;
  close(): Promise<void>;
}

/**
 * Starts the job cache unless it is turned off (SOLSTICE_JOB_CACHE_MB=0) or the backend cannot
 * forward its port to guests (bhyve guests sit on a bridge of their own; not wired yet).
 */
export async function startHostJobCache(
  config: Pick<OrchestratorConfig, "jobCacheMb" | "jobCacheDir" | "jobCachePort" | "backend" | "hostId" | "runDir">,
  log: Logger,
): Promise<HostJobCache | undefined> {
  if (config.jobCacheMb === 0) return undefined;
  // The run directory holds one folder per VM, and any host sharing it removes the folders no live
  // process owns: a cache inside it would be removed as a dead VM's.
  if (config.jobCacheDir && config.runDir && !path.relative(config.runDir, config.jobCacheDir).startsWith("..")) {
    throw new Error(
      `SOLSTICE_JOB_CACHE_DIR (${config.jobCacheDir}) is inside SOLSTICE_RUN_DIR (${config.runDir}), whose folders the VM reaper removes: put the job cache beside it`,
    );
  }
  if (config.backend !== "qemu") {
    log.warn({ backend: config.backend }, "the job cache is served to qemu guests only; actions/cache finds none here");
    return undefined;
  }
  const server = await startJobCacheServer({
    dir: config.jobCacheDir ?? defaultJobCacheDir(config.hostId),
    maxBytes: config.jobCacheMb * 1024 * 1024,
    port: config.jobCachePort,
    log: log.child({ component: "job-cache" }),
  });
  return { port: server.port, access: guestCacheAccess(server, GUEST_GATEWAY_ADDRESS), close: () => server.close() };
}
