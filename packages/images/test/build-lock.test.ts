import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ImageLockTimeoutError } from "@solstice/images";
import { type LockWait, withBuildLock } from "../src/build-lock.ts";
import { waitingProgress } from "../src/ensure-image.ts";

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

test("a waiter sees the holder's build progress and how long it has waited of its bound, then gives up with both", {
  timeout: 10_000,
}, async () => {
  await withTempDir(async (dir) => {
    const lockPath = join(dir, "tiny-0.lock");
    const waits: LockWait[] = [];
    // The holder, in this process: it builds until the waiter has given up.
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const holder = withBuildLock(lockPath, { waitTimeoutMs: 1_000 }, async (share) => {
      share({ phase: "building", fraction: 0.4 });
      await released;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await assert.rejects(
      withBuildLock(
        lockPath,
        { waitTimeoutMs: 600, pollMs: 50, reportEveryMs: 200, onWaiting: (w) => waits.push(w) },
        async () => undefined,
      ),
      (error) => {
        assert.ok(error instanceof ImageLockTimeoutError);
        assert.match(
          error.message,
          /gave up after waiting \d+ s for another process building or downloading this image/,
        );
        assert.match(error.message, /last at building 40%/);
        return true;
      },
    );
    release();
    await holder;
    assert.ok(waits.length >= 2, `reported while waiting (${waits.length} times)`);
    assert.deepEqual(waits[0]?.progress, { phase: "building", fraction: 0.4 });
    assert.equal(waits[0]?.boundMs, 600);
    assert.ok((waits.at(-1)?.waitedMs ?? 0) > (waits[0]?.waitedMs ?? 0), "the wait moves");
    const line = waitingProgress("waiting-for-build", waits[0] as LockWait);
    assert.match(line.detail ?? "", /held by pid \d+, at building 40%; waited \d+ s of at most 1 s/);
    assert.equal(line.fraction, 0.4);
    await assert.rejects(access(`${lockPath}.progress`), "the progress file goes with the lock");
  });
});
