import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { projectRoot, runCiadm } from "./support/ciadm.ts";
import { leftovers } from "./support/fleet.ts";
import { commitAll, initRepository } from "./support/git-repository.ts";

describe("a matrix over guest architectures (ciadm run, TCG on this machine)", { timeout: 900_000 }, () => {
  let repo: string;
  let runDir: string;
  before(async () => {
    repo = await mkdtemp(path.join(tmpdir(), "solstice-arches-"));
    runDir = await mkdtemp(path.join(tmpdir(), "solstice-arches-vms-"));
    await initRepository(repo);
    await copyFile(path.join(projectRoot, "examples/arches.yml"), path.join(repo, "arches.yml"));
    await commitAll(repo, "first");
  });
  after(async () => {
    await rm(repo, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  test("examples/arches.yml prints x86_64, aarch64 and riscv64 from three real VMs", async () => {
    // One VM at a time: the suite shares this machine's two cores with other VM tests.
    const run = await runCiadm(["run", "arches.yml", "--parallel", "1", "--run-dir", runDir], repo);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /tiny: uname -m = x86_64, RUNNER_ARCH = X64, 1 files checked out/);
    assert.match(run.stdout, /tiny-arm64: uname -m = aarch64, RUNNER_ARCH = ARM64, 1 files checked out/);
    assert.match(run.stdout, /tiny-riscv64: uname -m = riscv64, RUNNER_ARCH = RISCV64, 1 files checked out/);
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });
});
