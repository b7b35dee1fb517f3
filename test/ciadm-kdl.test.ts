import assert from "node:assert/strict";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { projectRoot as root, runCiadm } from "./support/ciadm.ts";
import { leftovers } from "./support/fleet.ts";
import { commitAll, initRepository } from "./support/git-repository.ts";

/**
 * The seed's labels on an image this machine has. Its steps need no more than the tiny guest, and
 * tiny-fast starts from a saved snapshot in a few seconds.
 */
const SEED_LABELS = ["--map-label", "illumos-stable=tiny-fast", "--map-label", "ubuntu-22.04=tiny-fast"];

/** Stand-ins for the tools the seed's steps call, which the tiny guest does not have. */
const STUB = '#!/bin/sh\necho "$(basename "$0") $*: ok"\n';

/**
 * The seed's example with one KDL addition: a setup per job that puts the stand-ins on PATH. The
 * steps are the seed's, line for line (the test checks).
 */
function seedWithStubs(seed: string): string {
  return seed.replace(/^( *)(job .*\{)$/gm, '$1$2\n$1  setup run="echo $PWD/ci/bin >> $GITHUB_PATH"');
}

describe("ciadm run on KDL workflows, in tiny VMs (TCG on this machine)", { timeout: 600_000 }, () => {
  let repo: string;
  let runDir: string;
  let seed: string;
  const run = (args: string[]) =>
    runCiadm([...args, "--accelerator", "tcg", "--run-dir", runDir, "--parallel", "2"], repo);

  before(async () => {
    repo = await mkdtemp(path.join(tmpdir(), "solstice-kdl-repo-"));
    runDir = await mkdtemp(path.join(tmpdir(), "solstice-kdl-vms-"));
    seed = await readFile(path.join(root, "examples/solstice-ci.kdl"), "utf8");
    await mkdir(path.join(repo, ".solstice"));
    await mkdir(path.join(repo, ".github/workflows"), { recursive: true });
    await mkdir(path.join(repo, "ci/bin"), { recursive: true });
    await writeFile(path.join(repo, ".solstice/workflow.kdl"), seedWithStubs(seed));
    // An Actions workflow beside it, which `ciadm run` with no file must not pick.
    await writeFile(path.join(repo, ".github/workflows/ci.yml"), "on: push\njobs: {}\n");
    for (const tool of ["cargo", "ruff"]) {
      await writeFile(path.join(repo, "ci/bin", tool), STUB);
      await chmod(path.join(repo, "ci/bin", tool), 0o755);
    }
    await copyFile(path.join(root, "examples/portable.kdl"), path.join(repo, "portable.kdl"));
    await writeFile(path.join(repo, "seed.kdl"), seed);
    await initRepository(repo);
    await commitAll(repo, "first");
  });
  after(async () => {
    await rm(repo, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  test("with no file, the seed's example runs from .solstice/workflow.kdl: its steps as written, its labels mapped", async () => {
    const steps = (text: string) => text.split("\n").filter((line) => line.trim().startsWith("step "));
    assert.deepEqual(steps(seedWithStubs(seed)), steps(seed), "the steps are the seed's");

    const result = await run(["run", ...SEED_LABELS]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stderr, /running \.solstice\/workflow\.kdl/);
    assert.match(result.stderr, /jobs for illumos-stable run on tiny-fast here/);
    assert.match(result.stdout, /━━ job build \(runs-on: tiny-fast\) ━━/);
    assert.match(result.stdout, /━━ job lint \(runs-on: tiny-fast\) ━━/);
    for (const line of [
      "cargo fmt --check: ok",
      "cargo clippy -- -D warnings: ok",
      "cargo test --workspace: ok",
      "ruff check .: ok",
    ]) {
      assert.ok(result.stdout.includes(line), `${line} in ${result.stdout}`);
    }
    assert.match(result.stdout, /▶ \[3\/5\] Format/);
    assert.match(result.stdout, /Summary:[\s\S]*build\s+succeeded[\s\S]*lint\s+succeeded/);
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });

  test("a multi-OS job runs one VM per image, each with its own setup and scripts", async () => {
    const result = await run(["run", "portable.kdl"]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /job portable \(tiny\) \(runs-on: tiny\)/);
    assert.match(result.stdout, /job portable \(tiny-fast\) \(runs-on: tiny-fast\)/);
    assert.match(result.stdout, /setting up for hello/);
    assert.match(result.stdout, /setting up the fast image/);
    const kernel = (image: string) => new RegExp(`on ${image}: (\\S+) flavour=(\\w+)`).exec(result.stdout)?.slice(1);
    const [tinyKernel, tinyFlavour] = kernel("tiny") ?? [];
    const [fastKernel, fastFlavour] = kernel("tiny-fast") ?? [];
    assert.equal(tinyFlavour, "plain");
    assert.equal(fastFlavour, "fast");
    assert.ok(
      tinyKernel && fastKernel && tinyKernel !== fastKernel,
      `two images, two kernels: ${tinyKernel} ${fastKernel}`,
    );
    assert.match(result.stdout, /Linux \S+\n/, "tiny's own script for the Kernel step (uname -sr)");
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });

  test("workflow check reports a KDL file's problems as file:line:col: key: message, as --json too", async () => {
    await writeFile(
      path.join(repo, "bad.kdl"),
      'workflow {\n  job id="a" runs-on="tiny" {\n    stpe run="x"\n  }\n}\n',
    );
    const human = await runCiadm(["workflow", "check", "bad.kdl"], repo);
    assert.equal(human.code, 1);
    assert.match(
      human.stdout,
      /^bad\.kdl:2:14: job\.a\.runs-on: `job` has no property `runs-on`.*\n {2}suggestion: did you mean `runs_on`\?/m,
    );
    assert.match(human.stdout, /^bad\.kdl:3:5: job\.a\.stpe: unknown node `stpe` here/m);
    const json = await runCiadm(["workflow", "check", "--json", "bad.kdl", "seed.kdl"], repo);
    const rows = JSON.parse(json.stdout) as Array<{ file: string; line: number; column: number; key: string }>;
    assert.equal(json.code, 1);
    // The seed's example has none; bad.kdl's misspelt runs_on is also a job without one.
    assert.deepEqual(
      rows.map((r) => `${r.file}:${r.line}:${r.column} ${r.key}`),
      ["bad.kdl:2:3 job.a", "bad.kdl:2:3 job.a", "bad.kdl:2:14 job.a.runs-on", "bad.kdl:3:5 job.a.stpe"],
    );
  });
});
