import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { projectRoot, runCiadm } from "../support/ciadm.ts";
import { leftovers } from "../support/fleet.ts";
import { commitAll, initRepository } from "../support/git-repository.ts";

// Not in scripts/test.sh: building this image emulates a whole Debian installation under TCG
// (docs/architectures.md has its build time); `corepack pnpm test:debian-arm64` runs this file and
// the run-step conformance cases on the image.

describe("a job on debian-12-arm64, the full Debian 12 for aarch64 (ciadm run, TCG on this machine)", {
  timeout: 3 * 60 * 60_000,
}, () => {
  let repo: string;
  let runDir: string;
  before(async () => {
    repo = await mkdtemp(path.join(tmpdir(), "solstice-debian-arm64-"));
    runDir = await mkdtemp(path.join(tmpdir(), "solstice-debian-arm64-vms-"));
    await initRepository(repo);
    await copyFile(path.join(projectRoot, "examples/debian-arm64.yml"), path.join(repo, "debian-arm64.yml"));
    await commitAll(repo, "first");
  });
  after(async () => {
    await rm(repo, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  test("the image is built (or found in the cache) the way a job would make it", async () => {
    const started = Date.now();
    const prepare = await runCiadm(["images", "prepare", "debian-12-arm64"], projectRoot);
    assert.equal(prepare.code, 0, prepare.stdout + prepare.stderr);
    assert.match(prepare.stdout, /^debian-12-arm64: ready at .*\/disk\.qcow2$/m);
    console.log(`# debian-12-arm64 ready in ${Math.round((Date.now() - started) / 1000)} s`);
  });

  test("examples/debian-arm64.yml runs on Debian for aarch64: uname, Debian's version, apt and gcc", async () => {
    const run = await runCiadm(["run", "debian-arm64.yml", "--run-dir", runDir], repo);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /uname -m = aarch64, RUNNER_ARCH = ARM64, Debian 12\.\d+/);
    assert.match(run.stdout, /apt 2\.6\.\d+ \(arm64\)/);
    assert.match(run.stdout, /hello from C, built by gcc for aarch64-linux-gnu/);
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });
});
