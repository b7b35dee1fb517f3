import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { runCiadm } from "./support/ciadm.ts";

// `ciadm workflow check` and `ciadm workflow eval`, run as a user runs them: the real binary in a
// subprocess, on files in a temporary directory. Nothing here boots a VM.

const VALID = `on: push
jobs:
  build:
    runs-on: tiny
    steps:
      - uses: actions/checkout@v4
      - run: echo "\${{ github.ref }}"
      - run: curl -H "Bearer \${{ secrets.TOKEN }}" https://example.org
`;

const BROKEN = `on: push
concurrency: ci
jobs:
  build:
    runs_on: tiny
    services:
      db:
        image: postgres
    steps:
      - uses: docker://alpine:3.20
      - run: echo \${{ githb.ref }}
      - run: echo hi
        timeout: 5
`;

interface Row {
  file: string;
  line: number;
  column: number;
  key: string;
  message: string;
  suggestion: string | null;
}

describe("ciadm workflow", { timeout: 120_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "solstice-workflow-cli-"));
    await writeFile(path.join(dir, "valid.yml"), VALID);
    await writeFile(path.join(dir, "broken.yml"), BROKEN);
    await writeFile(path.join(dir, "syntax.yml"), "jobs:\n  a:\n    runs-on: tiny\n    runs-on: tiny\n");
    await writeFile(
      path.join(dir, "contexts.json"),
      JSON.stringify({
        GitHub: { ref: "refs/heads/main", event: { commits: [{ message: "one" }, { message: "two" }] } },
        steps: { build: { outcome: "failure", outputs: { n: "3" } } },
        job: { status: "failure" },
      }),
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("check passes a valid workflow with exit code 0", async () => {
    const run = await runCiadm(["workflow", "check", "valid.yml"], dir);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /valid/);
  });

  test("check lists every problem with file:line:col, key and a suggestion, and exits 1", async () => {
    const run = await runCiadm(["workflow", "check", "broken.yml"], dir);
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stdout.split("\n");
    const expectations: Array<[RegExp, RegExp]> = [
      [/^broken\.yml:2:1: concurrency: concurrency groups are not supported/, /suggestion: remove concurrency:/],
      [/^broken\.yml:5:5: jobs\.build\.runs_on: unknown key `runs_on`/, /suggestion: did you mean `runs-on`\?/],
      [/^broken\.yml:6:5: jobs\.build\.services: service containers/, /suggestion: install and start the service/],
      [
        /^broken\.yml:10:15: jobs\.build\.steps\[0\]\.uses: action `docker:\/\/alpine:3.20` is not supported: Solstice runs `run:` steps, the built-in actions\/checkout, and JavaScript and composite actions/,
        /suggestion: Docker actions are not run/,
      ],
      [
        /^broken\.yml:11:19: jobs\.build\.steps\[1\]\.run: .*unknown context: 'githb'/,
        /suggestion: did you mean `github`\?/,
      ],
      [
        /^broken\.yml:13:9: jobs\.build\.steps\[2\]\.timeout: unknown key/,
        /suggestion: did you mean `timeout-minutes`\?/,
      ],
    ];
    for (const [problem, suggestion] of expectations) {
      const at = lines.findIndex((l) => problem.test(l));
      assert.ok(at >= 0, `no line matches ${problem} in:\n${run.stdout}`);
      assert.match(lines[at + 1] ?? "", suggestion);
    }
    assert.match(run.stdout, /problems in 1 of 1 file\n$/);
  });

  test("check --json prints one machine-readable row per problem of every file given", async () => {
    const run = await runCiadm(
      ["workflow", "check", "--json", "valid.yml", "broken.yml", "syntax.yml", "gone.yml"],
      dir,
    );
    assert.equal(run.code, 1, run.stderr);
    const rows = JSON.parse(run.stdout) as Row[];
    for (const row of rows) {
      assert.deepEqual(Object.keys(row).sort(), ["column", "file", "key", "line", "message", "suggestion"]);
    }
    assert.deepEqual([...new Set(rows.map((r) => r.file))], ["broken.yml", "syntax.yml", "gone.yml"]);
    const node = rows.find((r) => r.key === "jobs.build.steps[0].uses");
    assert.deepEqual(node && [node.line, node.column, node.suggestion], [
      10,
      15,
      "Docker actions are not run (no container runtime in the job's VM is assumed): run the container's command from a run: step, in an image that has docker or podman",
    ]);
    const typo = rows.find((r) => r.key === "jobs.build.runs_on");
    assert.equal(typo?.suggestion, "did you mean `runs-on`?");
    const syntax = rows.find((r) => r.file === "syntax.yml");
    assert.match(syntax?.message ?? "", /YAML syntax error: Map keys must be unique/);
    assert.deepEqual([syntax?.line, syntax?.column], [4, 5]);
    const gone = rows.find((r) => r.file === "gone.yml");
    assert.match(gone?.message ?? "", /cannot read workflow file gone\.yml/);
    const broken = rows.filter((r) => r.file === "broken.yml").map((r) => r.line);
    assert.deepEqual(
      broken,
      [...broken].sort((a, b) => a - b),
      "problems of a file come in reading order",
    );
  });

  test("eval prints an expression's value as JSON, reading contexts from --context", async () => {
    const run = await runCiadm(
      ["workflow", "eval", "github.event.commits.*.message", "--context", "contexts.json"],
      dir,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), ["one", "two"]);
    const compare = await runCiadm(
      [
        "workflow",
        "eval",
        `\${{ steps.build.outputs.n >= 3 && github.ref == 'REFS/HEADS/MAIN' }}`,
        "--context",
        "contexts.json",
      ],
      dir,
    );
    assert.equal(compare.code, 0, compare.stderr);
    assert.equal(compare.stdout, "true\n");
  });

  test("eval substitutes the expressions of a text that has more than one", async () => {
    const run = await runCiadm(
      ["workflow", "eval", `ref=\${{ github.ref }} n=\${{ steps.build.outputs.n }}`, "--context", "contexts.json"],
      dir,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout), "ref=refs/heads/main n=3");
  });

  test("eval --condition adds success() && and takes the status functions from job.status", async () => {
    const implicit = await runCiadm(
      ["workflow", "eval", "--condition", "github.ref == 'refs/heads/main'", "--context", "contexts.json"],
      dir,
    );
    assert.equal(implicit.code, 0, implicit.stderr);
    assert.equal(implicit.stdout, "false\n", "job.status is failure, so the implicit success() is false");
    assert.match(implicit.stderr, /success\(\) && \(github\.ref == 'refs\/heads\/main'\)/);
    const failure = await runCiadm(
      [
        "workflow",
        "eval",
        "--condition",
        "failure() && steps.build.outcome == 'failure'",
        "--context",
        "contexts.json",
      ],
      dir,
    );
    assert.equal(failure.code, 0, failure.stderr);
    assert.equal(failure.stdout, "true\n");
    const noContext = await runCiadm(["workflow", "eval", "--condition", "failure()"], dir);
    assert.equal(noContext.stdout, "false\n", "without job.status the job has not failed");
  });

  test("eval prints an invalid expression's position and reason on stderr and exits 1", async () => {
    const run = await runCiadm(["workflow", "eval", "github.ref == 'main' && frmJSON('1')"], dir);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(
      run.stderr,
      /expression `github\.ref == 'main' && frmJSON\('1'\)`, column 25: unknown function: 'frmJSON'/,
    );
    assert.match(run.stderr, /\n {26}\^\n/, "a caret under column 25");
    assert.match(run.stderr, /hint: did you mean `fromJSON`\?/);
    const unclosed = await runCiadm(["workflow", "eval", "'main"], dir);
    assert.equal(unclosed.code, 1);
    assert.match(unclosed.stderr, /column 1: .*hint: a string is not closed/s);
  });

  test("eval of an expression over several lines names the line and column and puts the caret under that line", async () => {
    const parsed = await runCiadm(["workflow", "eval", "github.ref == 'main'\n  && frmJSON('1')"], dir);
    assert.equal(parsed.code, 1);
    assert.match(parsed.stderr, /, line 2, column 6: unknown function: 'frmJSON'/);
    assert.match(parsed.stderr, /\n {2}github\.ref == 'main'\n {4}&& frmJSON\('1'\)\n {7}\^\n/);
    const lexed = await runCiadm(["workflow", "eval", "github.ref\n== 'main' ;"], dir);
    assert.equal(lexed.code, 1);
    assert.match(lexed.stderr, /, line 2, column 11: Unexpected symbol: ';'/);
    assert.match(lexed.stderr, /\n {2}== 'main' ;\n {12}\^\n/);
  });

  test("eval refuses a status function outside --condition and a context file with an unknown context", async () => {
    const status = await runCiadm(["workflow", "eval", "always()"], dir);
    assert.equal(status.code, 2);
    assert.match(status.stderr, /always\(\) only has a value in an if:.*\nhint: pass --condition/s);
    await writeFile(path.join(dir, "typo.json"), JSON.stringify({ stepz: {} }));
    const typo = await runCiadm(["workflow", "eval", "1", "--context", "typo.json"], dir);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /has `stepz`, which is no context\nhint: did you mean `steps`\?/);
  });
});
