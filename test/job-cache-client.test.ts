import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as cache from "@actions/cache";
import { type JobCacheServer, startJobCacheServer } from "@solstice/job-cache";
import { pino } from "pino";

// GitHub's own client library (@actions/cache, the code inside actions/cache) against the job
// cache server on this host, without a VM: the protocol, restore keys and the credential check.
// The same library runs inside a guest in test/job-cache-vm.test.ts.

const T = { timeout: 60_000 };

describe("the job cache server, through @actions/cache", () => {
  let root: string;
  let server: JobCacheServer;
  const saved = { ...process.env };
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), "solstice-job-cache-client-"));
    server = await startJobCacheServer({
      dir: path.join(root, "store"),
      maxBytes: 50 * 1024 * 1024,
      port: 0,
      log: pino({ level: "silent" }),
    });
    // The v1 protocol: ACTIONS_CACHE_URL without ACTIONS_CACHE_SERVICE_V2, as on a Forgejo runner.
    delete process.env.ACTIONS_CACHE_SERVICE_V2;
    delete process.env.ACTIONS_RESULTS_URL;
    process.env.RUNNER_TEMP = path.join(root, "runner-temp");
    await mkdir(process.env.RUNNER_TEMP);
  });
  after(async () => {
    process.env = saved;
    await server?.close();
    await rm(root, { recursive: true, force: true });
  });

  const base = () => `http://127.0.0.1:${server.port}/`;
  /** Runs `work` as a job of `scope` would: with its own ACTIONS_CACHE_URL, in its own workspace. */
  const asJob = async <T>(scope: string, work: (dir: string, url: string) => Promise<T>): Promise<T> => {
    const opening = server.open(scope, base());
    const workspace = await mkdtemp(path.join(root, "ws-"));
    process.env.ACTIONS_CACHE_URL = opening.url;
    const cwd = process.cwd();
    process.chdir(workspace);
    try {
      return await work(workspace, opening.url);
    } finally {
      process.chdir(cwd);
      await opening.close();
    }
  };

  test(
    "a job saves a directory; later jobs of the repository restore it by exact key and by restore-key prefix",
    T,
    async () => {
      await asJob("forge.test/acme/app", async (ws) => {
        await mkdir(path.join(ws, "deps"));
        await writeFile(path.join(ws, "deps", "lib.txt"), "built once\n");
        assert.ok((await cache.saveCache(["deps"], "deps-linux-1")) > 0);
      });
      await asJob("forge.test/acme/app", async (ws) => {
        assert.equal(await cache.restoreCache(["deps"], "deps-linux-1"), "deps-linux-1");
        assert.equal(await readFile(path.join(ws, "deps", "lib.txt"), "utf8"), "built once\n");
      });
      await asJob("forge.test/acme/app", async (ws) => {
        assert.equal(await cache.restoreCache(["deps"], "deps-linux-2", ["deps-linux-", "deps-"]), "deps-linux-1");
        assert.equal(await readFile(path.join(ws, "deps", "lib.txt"), "utf8"), "built once\n");
        // A different path list is another version: nothing to restore.
        assert.equal(await cache.restoreCache(["deps", "other"], "deps-linux-1"), undefined);
      });
    },
  );

  test(
    "another repository's job finds nothing of it and cannot download its archive; a finished job's credential opens nothing",
    T,
    async () => {
      let archiveLocation = "";
      let finishedUrl = "";
      await asJob("forge.test/acme/secret", async (ws, url) => {
        await mkdir(path.join(ws, "out"));
        await writeFile(path.join(ws, "out", "token.txt"), "private\n");
        await cache.saveCache(["out"], "build-1");
        const version = await versionOf(url, "build-1");
        const hit = await fetch(`${url}_apis/artifactcache/cache?keys=build-1&version=${version}`);
        assert.equal(hit.status, 200);
        archiveLocation = ((await hit.json()) as { archiveLocation: string }).archiveLocation;
        assert.equal((await fetch(archiveLocation)).status, 200);
        finishedUrl = url;
      });
      await asJob("forge.test/mallory/app", async (_ws, url) => {
        assert.equal(await cache.restoreCache(["out"], "build-1", ["build-"]), undefined);
        // The other repository's archive, under this job's own credential: not there.
        const id = archiveLocation.split("/").at(-1);
        assert.equal((await fetch(`${url}_apis/artifactcache/artifacts/${id}`)).status, 404);
      });
      // The archive location's credential ended with its job.
      assert.equal((await fetch(archiveLocation)).status, 401);
      assert.equal((await fetch(`${finishedUrl}_apis/artifactcache/caches?key=build-1`)).status, 401);
      assert.equal((await fetch(`${base()}_apis/artifactcache/caches?key=build-1`)).status, 401);
    },
  );

  /** The version @actions/cache sent for `key`, read back from the server's listing. */
  async function versionOf(url: string, key: string): Promise<string> {
    const list = (await (await fetch(`${url}_apis/artifactcache/caches?key=${key}`)).json()) as {
      artifactCaches: { cacheVersion: string }[];
    };
    return list.artifactCaches[0]?.cacheVersion ?? "";
  }
});
