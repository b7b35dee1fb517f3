import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { cacheTestAction } from "./support/bundled-action.ts";
import { runCiadm } from "./support/ciadm.ts";
import { leftovers } from "./support/fleet.ts";
import { type GitHttpServer, startGitHttpServer } from "./support/git-http-server.ts";

// Job 1 makes a directory and saves it with the cache test action (served by a git server on
// loopback that the host fetches actions from); job 2, in another VM, restores it.
const WORKFLOW = `on: push
jobs:
  save:
    runs-on: tiny
    steps:
      - run: mkdir -p deps && echo "built in job 1" > deps/lib.txt && head -c 65536 /dev/urandom > deps/blob
      - run: md5sum deps/blob > blob.md5
      - uses: solstice-test/cache@v1
        with: { mode: save, path: deps, key: deps-linux-1 }
      - id: sum
        run: echo "md5=$(cut -d' ' -f1 blob.md5)" >> "$GITHUB_OUTPUT"
    outputs:
      md5: \${{ steps.sum.outputs.md5 }}
  restore:
    needs: save
    runs-on: tiny
    steps:
      - uses: solstice-test/cache@v1
        with: { mode: restore, path: deps, key: deps-linux-1 }
      - run: cat deps/lib.txt && echo "exact md5 $(md5sum deps/blob | cut -d' ' -f1)" && rm -rf deps
      - uses: solstice-test/cache@v1
        with:
          mode: restore
          path: deps
          key: deps-linux-2
          restore-keys: |
            deps-mac-
            deps-linux-
      - run: echo "prefix md5 $(md5sum deps/blob | cut -d' ' -f1) saved \${{ needs.save.outputs.md5 }}"
      - uses: solstice-test/cache@v1
        with: { mode: restore, path: deps, key: nothing-like-it }
`;

describe("actions/cache's library in two jobs of ciadm run: job 1 saves, job 2 restores in another VM (tiny guests, TCG)", {
  timeout: 600_000,
}, () => {
  let git: GitHttpServer;
  let dir: string;
  let runDir: string;
  let cacheDir: string;
  before(async () => {
    git = await startGitHttpServer();
    await git.publish("solstice-test/cache", await cacheTestAction(), ["v1"]);
    dir = await mkdtemp(path.join(tmpdir(), "solstice-cache-wf-"));
    runDir = await mkdtemp(path.join(tmpdir(), "solstice-cache-vms-"));
    cacheDir = await mkdtemp(path.join(tmpdir(), "solstice-job-cache-"));
    await writeFile(path.join(dir, "cache.yml"), WORKFLOW);
  });
  after(async () => {
    await git?.close();
    for (const d of [dir, runDir, cacheDir]) if (d) await rm(d, { recursive: true, force: true });
  });

  test("the second job restores the first's directory by its exact key and by a restore-key prefix, through the host's one forwarded port", async () => {
    const run = await runCiadm(
      ["run", "cache.yml", "--accelerator", "tcg", "--run-dir", runDir, "--actions-url", git.url],
      dir,
      { SOLSTICE_JOB_CACHE_DIR: cacheDir },
    );
    const out = run.stdout + run.stderr;
    // Where the time goes (boots, Node carried in), for the budget in docs/testing.md.
    console.log(
      out
        .split("\n")
        .filter((l) => /carried|VM ready|Summary|succeeded|failed/.test(l))
        .join("\n"),
    );
    assert.equal(run.code, 0, out);
    assert.match(out, /saved deps-linux-1/);
    const saved = /output md5 = ([0-9a-f]{32})/.exec(out)?.[1];
    assert.ok(saved, out);
    // Job 2, another VM: the exact key, then (after the directory is gone) the newest entry with
    // the second restore key's prefix, byte for byte; a key nothing starts with restores nothing.
    assert.match(out, /restored deps-linux-1\n(.*\n)*?.*built in job 1\n.*exact md5 ([0-9a-f]{32})/);
    assert.equal(/exact md5 ([0-9a-f]{32})/.exec(out)?.[1], saved);
    assert.equal(/prefix md5 ([0-9a-f]{32})/.exec(out)?.[1], saved);
    assert.equal(out.match(/restored deps-linux-1/g)?.length, 2, out);
    assert.match(out, /restored nothing/);
    // The credential in ACTIONS_CACHE_URL never shows.
    assert.doesNotMatch(out, /_apis\/artifactcache/);
    // The entry is on the host, committed (archive and metadata), nothing half-written left.
    const host = await readdir(path.join(cacheDir, "entries"));
    assert.deepEqual(host.filter((f) => f.endsWith(".json")).length, 1);
    assert.deepEqual(await readdir(path.join(cacheDir, "uploads")), []);
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });
});
