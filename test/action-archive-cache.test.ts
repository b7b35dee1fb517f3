import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { ActionStore } from "@solstice/executor";
import { pino } from "pino";
import { FakeActionRepositories, serveTarballs } from "./fakes/github/fake-actions.ts";

// The host's action cache with archives as GitHub hands them out (action download info →
// tarball URL + token), served by the fake GitHub's action repositories on loopback. No VM.

type ArchiveSource = Parameters<ActionStore["fetchArchive"]>[0];
const log = pino({ level: "silent" });
const signal = new AbortController().signal;

describe("action archives on the host", { timeout: 60_000 }, () => {
  let repos: FakeActionRepositories;
  let server: Awaited<ReturnType<typeof serveTarballs>>;
  let url: string;
  let dirs: string[] = [];
  const cacheDir = async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "solstice-archive-cache-"));
    dirs.push(dir);
    return dir;
  };

  before(async () => {
    repos = await FakeActionRepositories.create();
    server = await serveTarballs(repos);
    url = server.url;
    await repos.publish(
      "acme/hello",
      { "action.yml": "name: hello\nruns:\n  using: node20\n  main: index.js\n", "index.js": "console.log(1)\n" },
      ["v1"],
    );
    await repos.publish("acme/other", { "action.yml": "name: other\n" }, ["v1"]);
  });
  after(async () => {
    await server?.close();
    await repos?.close();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
    dirs = [];
  });

  const resolved = async (repository: string): Promise<ArchiveSource> => {
    const info = await repos.resolve(repository, "v1", url);
    assert.ok(info);
    return {
      repository: info.resolvedNameWithOwner,
      ref: "v1",
      commit: info.resolvedSha,
      tarballUrl: info.tarballUrl,
      token: info.token,
    };
  };

  test("an archive is downloaded once with its token, checked to be of the resolved commit, unpacked without GitHub's top folder; the next job and a concurrent one use the cache", async () => {
    const store = new ActionStore({ cacheDir: await cacheDir(), log });
    const source = await resolved("acme/hello");
    const [first, concurrent] = await Promise.all([
      store.fetchArchive(source, signal),
      store.fetchArchive(source, signal),
    ]);
    const next = await store.fetchArchive(source, signal);
    assert.equal(repos.downloadsOf("acme/hello"), 1, "one download for three fetches");
    assert.deepEqual([first.cached, concurrent.cached].sort(), [false, true]);
    assert.equal(next.cached, true);
    assert.equal(next.commit, source.commit);
    assert.deepEqual((await readdir(first.tree)).sort(), ["action.yml", "index.js"]);
    assert.match(await readFile(path.join(first.tree, "action.yml"), "utf8"), /using: node20/);
    assert.ok((await stat(first.archive)).size > 0, "the guest's archive is there");
  });

  test("two stores sharing one cache directory (an orchestrator and a ciadm run on one host) download an action once between them", async () => {
    const dir = await cacheDir();
    await repos.publish("acme/shared", { "action.yml": "name: shared\n" }, ["v1"]);
    const source = await resolved("acme/shared");
    const [one, other] = [new ActionStore({ cacheDir: dir, log }), new ActionStore({ cacheDir: dir, log })];
    const results = await Promise.all([one.fetchArchive(source, signal), other.fetchArchive(source, signal)]);
    assert.equal(
      repos.downloadsOf("acme/shared"),
      1,
      "the second waited on the first's lock file, then found the entry",
    );
    assert.deepEqual(results.map((r) => r.cached).sort(), [false, true]);
    assert.equal(results[0]?.tree, results[1]?.tree);
  });

  test("an archive of another commit, a refused token and a missing archive fail with the action named and no token in the message", async () => {
    const store = new ActionStore({ cacheDir: await cacheDir(), log });
    const source = await resolved("acme/hello");
    const other = await resolved("acme/other");
    const cases = [
      // GitHub said `other`'s commit, the URL serves hello's: the pax header tells them apart.
      [{ ...source, commit: other.commit }, /is of commit [0-9a-f]{40}, not the resolved/],
      [{ ...source, token: "ghs_wrong_token_value" }, /HTTP 401 \(the download token was refused/],
      [
        { ...source, tarballUrl: `${url}/api/v3/repos/acme/hello/tarball/${"0".repeat(40)}`, commit: "0".repeat(40) },
        /HTTP 404/,
      ],
    ] as const;
    for (const [bad, why] of cases) {
      await assert.rejects(store.fetchArchive(bad, signal), (error: Error) => {
        assert.equal(error.name, "ActionFetchError");
        assert.match(error.message, /acme\/hello@v1/);
        assert.match(error.message, why);
        assert.doesNotMatch(error.message, /ghs_/);
        return true;
      });
    }
    assert.equal((await store.fetchArchive(source, signal)).cached, false, "nothing half-done was left in the cache");
  });

  test("past its bound the cache evicts the least recently used action, never one a running job holds", async () => {
    // Four actions of ~93 KB each on disk (a 60 KB tree and its ~33 KB archive): two fit the bound.
    for (const name of ["a", "b", "c", "d"]) {
      await repos.publish(
        `lru/${name}`,
        { "action.yml": `name: ${name}\n`, "data.txt": randomBytes(30_000).toString("hex") },
        ["v1"],
      );
    }
    const store = new ActionStore({ cacheDir: await cacheDir(), log, maxBytes: 230_000 });
    const fetch = async (name: string) => store.fetchArchive(await resolved(`lru/${name}`), signal);
    const a = await fetch("a");
    const b = await fetch("b");
    store.release(a);
    // a is used again (by a job that ends), so b, still held by its job, is the least recently used.
    store.release(await fetch("a"));
    const c = await fetch("c");
    assert.equal(await exists(b.archive), true, "b is held by a running job: kept although least recently used");
    assert.equal(await exists(a.archive), false, "a, the least recently used one no job holds, was evicted");
    assert.equal(await exists(a.tree), false, "with its tree");
    assert.equal(await exists(c.archive), true);
    store.release(b);
    store.release(c);
    const d = await fetch("d");
    assert.equal(await exists(b.archive), false, "released, b goes next");
    assert.deepEqual([await exists(c.archive), await exists(d.archive)], [true, true]);
  });
});

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
