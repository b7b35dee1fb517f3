import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { CacheStore } from "../src/cache-store.ts";

const log = pino({ level: "silent" });
const T = { timeout: 30_000 };

async function save(store: CacheStore, scope: string, key: string, content: string, version = "v1"): Promise<number> {
  const bytes = Buffer.from(content);
  const id = await store.reserve({ scope, key, version, size: bytes.length, owner: "job" });
  await store.writeChunk(scope, id, 0, bytes.length - 1, Readable.from([bytes]));
  await store.commit(scope, id, bytes.length);
  return id;
}

describe("the cache store on disk", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "solstice-cache-store-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const fresh = async (maxBytes = 1_000_000) => {
    const dir = await mkdtemp(path.join(root, "s-"));
    return { dir, store: await CacheStore.open({ dir, maxBytes, log }) };
  };

  test(
    "restores the exact key first, then per restore key the newest entry with that prefix, of its own version and repository only",
    T,
    async () => {
      const { store } = await fresh();
      await save(store, "forge/a", "deps-linux-1", "one");
      await save(store, "forge/a", "deps-linux-2", "two");
      await save(store, "forge/a", "deps-mac-1", "mac");
      await save(store, "forge/a", "deps-linux-3", "other version", "v2");
      await save(store, "forge/b", "deps-linux-9", "b's");
      const keyOf = async (keys: string[], version = "v1", scope = "forge/a") =>
        (await store.find(scope, keys, version))?.key;
      assert.equal(await keyOf(["deps-linux-1", "deps-"]), "deps-linux-1", "an exact match wins over newer prefixes");
      assert.equal(await keyOf(["deps-linux-7", "deps-linux-"]), "deps-linux-2", "the newest with the prefix");
      assert.equal(await keyOf(["nothing", "deps-mac-", "deps-linux-"]), "deps-mac-1", "restore keys in order");
      assert.equal(await keyOf(["deps-linux-"], "v2"), "deps-linux-3", "only entries of the asked version");
      assert.equal(await keyOf(["deps-linux-9", "deps-"]), "deps-mac-1", "another repository's entry is not found");
      assert.equal(await keyOf(["deps-"], "v1", "forge/c"), undefined);
    },
  );

  test("a key is saved once: a second reservation of it is refused while it uploads and after", T, async () => {
    const { store } = await fresh();
    const id = await store.reserve({ scope: "r", key: "k", version: "v1", owner: "job" });
    await assert.rejects(store.reserve({ scope: "r", key: "k", version: "v1", owner: "other" }), { code: "exists" });
    await store.writeChunk("r", id, 0, 2, Readable.from([Buffer.from("abc")]));
    await store.commit("r", id, 3);
    await assert.rejects(store.reserve({ scope: "r", key: "k", version: "v1", owner: "other" }), { code: "exists" });
    // The same key in another repository is that repository's own.
    assert.ok((await store.reserve({ scope: "s", key: "k", version: "v1", owner: "job" })) > id);
  });

  test("a half-written upload is never found, cannot be committed, and is dropped when its job ends", T, async () => {
    const { dir, store } = await fresh();
    const id = await store.reserve({ scope: "r", key: "half", version: "v1", size: 10, owner: "job-1" });
    await store.writeChunk("r", id, 0, 4, Readable.from([Buffer.from("01234")]));
    assert.equal(await store.find("r", ["half"], "v1"), undefined);
    await assert.rejects(store.commit("r", id, 10), { code: "incomplete" });
    // A chunk shorter than its range is refused and does not count as written.
    await assert.rejects(store.writeChunk("r", id, 5, 9, Readable.from([Buffer.from("56")])), { code: "bad_range" });
    await assert.rejects(store.commit("r", id, 10), { code: "incomplete" });
    // Bytes past the announced size are refused.
    await assert.rejects(store.writeChunk("r", id, 8, 12, Readable.from([Buffer.from("xxxxx")])), {
      code: "bad_range",
    });
    await store.discardUploads("job-1");
    assert.deepEqual(await readdir(path.join(dir, "uploads")), []);
    await assert.rejects(store.commit("r", id, 10), { code: "not_found" });
  });

  test(
    "an archive altered on disk after its commit is deleted instead of served, and an older intact entry is restored",
    T,
    async () => {
      const { dir, store } = await fresh();
      await save(store, "r", "build-1", "older and intact");
      const id = await save(store, "r", "build-2", "newer, to be damaged");
      const archive = path.join(dir, "entries", `${id}.archive`);
      const bytes = await readFile(archive);
      bytes[3] = (bytes[3] ?? 0) ^ 0xff;
      await writeFile(archive, bytes);
      assert.equal((await store.find("r", ["build-"], "v1"))?.key, "build-1");
      assert.deepEqual((await readdir(path.join(dir, "entries"))).sort(), ["1.archive", "1.json"]);
    },
  );

  test("a truncated archive is not served either", T, async () => {
    const { dir, store } = await fresh();
    const id = await save(store, "r", "k", "0123456789");
    await writeFile(path.join(dir, "entries", `${id}.archive`), "01234");
    assert.equal(await store.find("r", ["k"], "v1"), undefined);
  });

  test(
    "reopening after a crash keeps committed entries and removes uploads and archives without metadata",
    T,
    async () => {
      const { dir, store } = await fresh();
      await save(store, "r", "kept", "kept bytes");
      const pending = await store.reserve({ scope: "r", key: "pending", version: "v1", owner: "job" });
      await store.writeChunk("r", pending, 0, 2, Readable.from([Buffer.from("abc")]));
      // A commit cut between the archive's rename and the metadata's.
      await writeFile(path.join(dir, "entries", "77.archive"), "no metadata");
      await writeFile(path.join(dir, "entries", "78.json"), "{ not json");
      const reopened = await CacheStore.open({ dir, maxBytes: 1_000_000, log });
      assert.equal((await reopened.find("r", ["kept"], "v1"))?.size, 10);
      assert.deepEqual((await readdir(path.join(dir, "entries"))).sort(), ["1.archive", "1.json"]);
      assert.deepEqual(await readdir(path.join(dir, "uploads")), []);
      // The reopened index knows the entry: its key cannot be saved again, and new ids pass it.
      await assert.rejects(reopened.reserve({ scope: "r", key: "kept", version: "v1", owner: "job" }), {
        code: "exists",
      });
      assert.ok((await reopened.reserve({ scope: "r", key: "next", version: "v1", owner: "job" })) > 1);
    },
  );

  test(
    "past the size bound the least recently used entries go; a restore counts as a use; a cache larger than the bound is refused",
    T,
    async () => {
      const { dir, store } = await fresh(100);
      await save(store, "r", "a", "a".repeat(40));
      await save(store, "r", "b", "b".repeat(40));
      assert.ok(await store.find("r", ["a"], "v1"), "a is used: b is now the least recently used");
      await save(store, "r", "c", "c".repeat(40));
      assert.equal(await store.find("r", ["b"], "v1"), undefined);
      assert.ok(await store.find("r", ["a"], "v1"));
      assert.ok(await store.find("r", ["c"], "v1"));
      assert.equal(store.usedBytes(), 80);
      assert.deepEqual((await readdir(path.join(dir, "entries"))).sort(), [
        "1.archive",
        "1.json",
        "3.archive",
        "3.json",
      ]);
      await assert.rejects(store.reserve({ scope: "r", key: "big", version: "v1", size: 101, owner: "job" }), {
        code: "too_large",
      });
      // Without an announced size, the bound still holds per chunk.
      const id = await store.reserve({ scope: "r", key: "big", version: "v1", owner: "job" });
      await assert.rejects(store.writeChunk("r", id, 0, 100, Readable.from([Buffer.alloc(101)])), {
        code: "bad_range",
      });
    },
  );

  test(
    "a directory serves one live process: another's claim is refused with the setting to change, a dead one's taken over",
    T,
    async () => {
      const { dir, store } = await fresh();
      await store.close();
      // Process 1 (init) is alive on every Linux machine.
      await writeFile(path.join(dir, "owner.pid"), "1");
      await assert.rejects(CacheStore.open({ dir, maxBytes: 100, log }), (error: Error) => {
        assert.match(error.message, /in use by process 1; .*SOLSTICE_JOB_CACHE_DIR/);
        return true;
      });
      await writeFile(path.join(dir, "owner.pid"), "4194304999");
      const reopened = await CacheStore.open({ dir, maxBytes: 100, log });
      assert.equal(await readFile(path.join(dir, "owner.pid"), "utf8"), String(process.pid));
      await reopened.close();
    },
  );

  test(
    "unfinished uploads together stay within the bound: one more chunk past it is refused until an upload is dropped",
    T,
    async () => {
      const { store } = await fresh(100);
      const first = await store.reserve({ scope: "r", key: "one", version: "v1", owner: "job-1" });
      await store.writeChunk("r", first, 0, 59, Readable.from([Buffer.alloc(60)]));
      const second = await store.reserve({ scope: "r", key: "two", version: "v1", owner: "job-2" });
      await assert.rejects(store.writeChunk("r", second, 0, 59, Readable.from([Buffer.alloc(60)])), {
        code: "too_large",
      });
      await store.discardUploads("job-1");
      await store.writeChunk("r", second, 0, 59, Readable.from([Buffer.alloc(60)]));
      assert.equal((await store.commit("r", second, 60)).size, 60);
    },
  );
});
