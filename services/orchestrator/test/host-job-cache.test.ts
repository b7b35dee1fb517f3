import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { startHostJobCache } from "../src/host-job-cache.ts";

const log = pino({ level: "silent" });

test("a job cache inside the run directory is refused (the VM reaper would remove it); beside it, it starts", async () => {
  const runDir = await mkdtemp(path.join(tmpdir(), "solstice-runs-"));
  const base = { jobCacheMb: 1, jobCachePort: 0, backend: "qemu" as const, hostId: "cache-guard", runDir };
  try {
    await assert.rejects(
      startHostJobCache({ ...base, jobCacheDir: path.join(runDir, "job-cache") }, log),
      /SOLSTICE_JOB_CACHE_DIR .* is inside SOLSTICE_RUN_DIR .*put the job cache beside it/,
    );
    await assert.rejects(startHostJobCache({ ...base, jobCacheDir: runDir }, log), /is inside SOLSTICE_RUN_DIR/);
    const cache = await startHostJobCache({ ...base, jobCacheDir: `${runDir}-job-cache` }, log);
    assert.ok(cache && cache.port > 0);
    await cache.close();
  } finally {
    await rm(runDir, { recursive: true, force: true });
    await rm(`${runDir}-job-cache`, { recursive: true, force: true });
  }
});
