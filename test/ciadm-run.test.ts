import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { projectRoot as root, runCiadm } from "./support/ciadm.ts";
import { leftovers } from "./support/fleet.ts";
import { commitAll, initRepository } from "./support/git-repository.ts";

describe("ciadm run, the embedded default (no broker, no database; TCG on this machine)", { timeout: 900_000 }, () => {
  let repo: string;
  let runDir: string;
  before(async () => {
    repo = await mkdtemp(path.join(tmpdir(), "solstice-repo-"));
    runDir = await mkdtemp(path.join(tmpdir(), "solstice-ciadm-vms-"));
    await initRepository(repo);
    await writeFile(path.join(repo, "README.md"), "# a project under test\n");
    await commitAll(repo, "first");
    await writeFile(path.join(repo, "CHANGES.md"), "second commit\n");
    await commitAll(repo, "second");
  });
  after(async () => {
    await rm(repo, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  test("a passing workflow prints each step's output live and a success summary, and exits 0", async () => {
    await writeFile(
      path.join(repo, "ci.yml"),
      [
        "on: push",
        "jobs:",
        "  build:",
        "    runs-on: tiny",
        "    outputs:",
        `      version: \${{ steps.check.outputs.version }}`,
        "    steps:",
        "      - uses: actions/checkout@v4",
        "      - name: Show the checkout",
        "        id: check",
        "        run: |",
        "          cat README.md && echo commits=$(git rev-list --count HEAD)",
        "          echo '::warning file=a.c,line=2::look at this'",
        "          echo version=1.2 >> $GITHUB_OUTPUT",
        "      - run: echo uncommitted=$(cat extra.txt 2>/dev/null || echo none)",
        "      - uses: actions/checkout@v4",
        "        with: { fetch-depth: 0, path: full }",
        "      - run: echo full=$(git -C full rev-list --count HEAD)",
        "      - name: Only after a failure",
        "        if: failure()",
        "        run: echo not shown",
      ].join("\n"),
    );
    await writeFile(path.join(repo, "extra.txt"), "not committed\n");
    const run = await runCiadm(["run", "ci.yml", "--accelerator", "tcg", "--run-dir", runDir], repo);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /▶ \[1\/6\] Run actions\/checkout@v4/);
    assert.match(run.stdout, /▶ \[2\/6\] Show the checkout/);
    assert.match(run.stdout, /│ # a project under test/);
    assert.match(run.stdout, /│ commits=1\n/, "without fetch-depth, a shallow clone of depth 1, as on GitHub");
    assert.match(run.stdout, /│ full=2\n/, "fetch-depth: 0 is the whole history");
    assert.match(run.stdout, /uncommitted=none/, "HEAD is checked out, not the working tree");
    assert.match(run.stdout, /▲ warning a\.c:2: look at this\n/);
    assert.doesNotMatch(run.stdout, /::warning/);
    assert.match(run.stdout, /⊘ Only after a failure skipped/);
    assert.match(
      run.stdout,
      /Summary:\n\s+build\s+succeeded.*\n\s+warning a\.c:2: look at this \(step "Show the checkout"\)\n\s+output version = 1\.2\n/,
    );
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });

  test("a failing step makes the run exit non-zero and the summary names the step", async () => {
    await writeFile(
      path.join(repo, "fail.yml"),
      [
        "on: push",
        "jobs:",
        "  check:",
        "    runs-on: tiny",
        "    steps:",
        "      - name: Breaks",
        "        run: echo about to fail; exit 4",
        "      - run: echo never",
      ].join("\n"),
    );
    const run = await runCiadm(["run", "fail.yml", "--accelerator", "tcg", "--run-dir", runDir], repo);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(run.stdout, /about to fail/);
    assert.match(run.stdout, /✘ step "Breaks" failed: exit code 4/);
    assert.doesNotMatch(run.stdout, /│ never/);
  });

  test("a workflow Solstice cannot run is refused before any VM boots, with file, line and key", async () => {
    await writeFile(
      path.join(repo, "bad.yml"),
      ["on: push", "jobs:", "  build:", "    runs-on: tiny", "    steps:", "      - uses: docker://alpine:3.20"].join(
        "\n",
      ),
    );
    const run = await runCiadm(["run", "bad.yml", "--accelerator", "tcg", "--run-dir", runDir], repo);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /bad\.yml:6:\d+: jobs\.build\.steps\[0\]\.uses/);
    assert.match(run.stderr, /docker:\/\/alpine/);
  });

  test("the README's example runs in the Debian 12 guest booted from its own disk, with cloud-init", async () => {
    const run = await runCiadm(["run", "examples/hello.yml", "--accelerator", "tcg", "--run-dir", runDir], root);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /Hello from Solstice CI/);
    assert.match(run.stdout, /guest: Debian GNU\/Linux 12/);
    assert.match(run.stdout, /Python 3\.\d+/);
    assert.match(run.stdout, /# Solstice CI/);
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });
});
