import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pruneSnapshots, SNAPSHOT_UNUSED_MS, touchSnapshot } from "../src/snapshot.ts";

const HOUR = 3600 * 1000;

test("pruning deletes states and disk layers unrestored for a week, dead saves' parts and orphan locks, and keeps the rest", async () => {
  const dir = await mkdtemp(join(tmpdir(), "solstice-snapshots-"));
  try {
    const now = Date.now();
    const files: Record<string, number> = {
      "tiny-fast-old.state": now - SNAPSHOT_UNUSED_MS - HOUR,
      "tiny-fast-old.disk.qcow2": now - SNAPSHOT_UNUSED_MS - HOUR,
      "tiny-fast-old.lock": now - SNAPSHOT_UNUSED_MS - HOUR,
      "tiny-fast-recent.state": now - SNAPSHOT_UNUSED_MS + HOUR,
      "tiny-fast-recent.disk.qcow2": now - SNAPSHOT_UNUSED_MS + HOUR,
      "tiny-fast-dead.disk.qcow2.123.part": now - 2 * HOUR,
      "tiny-fast-recent.lock": now - 2 * HOUR,
      "tiny-fast-dead.state.123.part": now - 2 * HOUR,
      "tiny-fast-saving.state.456.part": now - 60_000,
      "tiny-fast-gone.lock": now - 2 * HOUR,
      "tiny-fast-new.lock": now - 60_000,
    };
    for (const [name, mtime] of Object.entries(files)) {
      await writeFile(join(dir, name), "x");
      await utimes(join(dir, name), new Date(mtime), new Date(mtime));
    }
    // Restored just now: an old state that is still in use is kept.
    for (const name of ["tiny-fast-used.state", "tiny-fast-used.disk.qcow2"]) {
      await writeFile(join(dir, name), "x");
      await utimes(join(dir, name), new Date(now - 30 * 24 * HOUR), new Date(now - 30 * 24 * HOUR));
    }
    await touchSnapshot(join(dir, "tiny-fast-used.state"), new Date(now));

    const removed = await pruneSnapshots(dir, { now });
    assert.deepEqual(removed.sort(), [
      "tiny-fast-dead.disk.qcow2.123.part",
      "tiny-fast-dead.state.123.part",
      "tiny-fast-gone.lock",
      "tiny-fast-old.disk.qcow2",
      "tiny-fast-old.lock",
      "tiny-fast-old.state",
    ]);
    assert.deepEqual((await readdir(dir)).sort(), [
      "tiny-fast-new.lock",
      "tiny-fast-recent.disk.qcow2",
      "tiny-fast-recent.lock",
      "tiny-fast-recent.state",
      "tiny-fast-saving.state.456.part",
      "tiny-fast-used.disk.qcow2",
      "tiny-fast-used.state",
    ]);
    assert.deepEqual(await pruneSnapshots(join(dir, "missing")), [], "a missing directory prunes nothing");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
