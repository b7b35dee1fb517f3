import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ImageLockTimeoutError } from "@solstice/images";
import { withBuildLock } from "../src/build-lock.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `solstice-lock-${randomUUID()}-`));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("a build lock left by a process that died is taken over at once", { timeout: 10_000 }, async () => {
  await withTempDir(async (dir) => {
    const dead = spawnSync("true");
    const lockPath = join(dir, "tiny-0.lock");
    await writeFile(lockPath, `${dead.pid} ${hostname()}\n`);
    const started = Date.now();

    const result = await withBuildLock(lockPath, { waitTimeoutMs: 5_000 }, async () => "built");

    assert.equal(result, "built");
    assert.ok(Date.now() - started < 1_000, "did not wait for the dead holder");
    await assert.rejects(access(lockPath), "the lock is released afterwards");
  });
});

test("a build lock held by a live process makes the next caller wait, then fail with a hint", {
  timeout: 10_000,
}, async () => {
  await withTempDir(async (dir) => {
    const lockPath = join(dir, "tiny-0.lock");
    await writeFile(lockPath, `${process.pid} ${hostname()}\n`);
    let ran = false;
    const holders: string[] = [];

    await assert.rejects(
      withBuildLock(lockPath, { waitTimeoutMs: 300, pollMs: 50, onWait: (h) => holders.push(h) }, async () => {
        ran = true;
      }),
      (error) => {
        assert.ok(error instanceof ImageLockTimeoutError);
        assert.equal(error.code, "lock_timeout");
        assert.match(error.hint ?? "", /delete .*tiny-0\.lock/);
        return true;
      },
    );
    assert.equal(ran, false);
    assert.deepEqual(holders, [`held by pid ${process.pid}`]);
  });
});
