import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseWorkflow } from "../src/index.ts";
import { only, problemsOf } from "./rejected-workflow.ts";

const T = { timeout: 5_000 };

const CONTEXTS = {
  github: { sha: "0123abc", ref: "refs/heads/main", repository: "acme/app", event: { head_commit: { id: "x" } } },
  runner: { os: "Linux" },
  vars: { REGION: "eu" },
  inputs: { level: 3 },
  matrix: { node: "20" },
};

describe("expressions", () => {
  it("substitutes env, github, runner, vars, inputs, matrix and string literals when planning", T, () => {
    const workflow = parseWorkflow(
      `env:
  APP: app-\${{ github.repository }}
jobs:
  build:
    name: build on \${{ runner.os }}
    runs-on: ubuntu-24.04
    env:
      TAG: \${{ env.APP }}-\${{ GITHUB.SHA }}
    steps:
      - name: Node \${{ matrix.node }}
        working-directory: \${{ vars.REGION }}/dir
        run: |
          echo \${{ env.TAG }} \${{ github.ref }}
          echo \${{ inputs.level }} \${{ 'it''s' }} [\${{ vars.MISSING }}]
      - uses: actions/checkout@v4
        with:
          ref: \${{ github.sha }}
`,
      { file: "ci.yml", contexts: CONTEXTS },
    );
    const [job] = workflow.jobs;
    assert.equal(job?.name, "build on Linux");
    assert.deepEqual(job?.env, { APP: "app-acme/app", TAG: "app-acme/app-0123abc" });
    const [run, checkout] = job?.steps ?? [];
    assert.ok(run?.kind === "run");
    assert.equal(run.name, "Node 20");
    assert.equal(run.workingDirectory, "eu/dir");
    assert.equal(run.script, "echo app-acme/app-0123abc refs/heads/main\necho 3 it's []\n");
    assert.ok(checkout?.kind === "checkout");
    assert.equal(checkout.ref, "0123abc");
  });

  it("rejects an unsupported expression at its line and column, naming it", T, () => {
    const problems = problemsOf(
      `jobs:
  a:
    runs-on: x
    steps:
      - id: one
        run: echo hi
      - run: |
          echo start
          echo \${{ steps.one.outputs.v }} and \${{ github.sha == 'x' }}
`,
      CONTEXTS,
    );
    assert.equal(problems.length, 2);
    const [first, second] = problems;
    assert.deepEqual([first?.line, first?.column, first?.key], [9, 16, "jobs.a.steps[1].run"]);
    assert.equal(
      first?.message,
      `expression \`\${{ steps.one.outputs.v }}\` is not supported yet (Solstice supports plain context references like env.X, github.sha)`,
    );
    assert.deepEqual([second?.line, second?.column], [9, 47]);
    assert.match(second?.message ?? "", /`\$\{\{ github\.sha == 'x' \}\}` is not supported yet/);
  });

  it("rejects a function call and an unclosed expression", T, () => {
    const problems = problemsOf(
      `jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \${{ format('{0}', 1) }}\n      - run: echo \${{ env.X\n`,
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [5, "jobs.a.steps[0].run"],
        [6, "jobs.a.steps[1].run"],
      ],
    );
    assert.match(problems[1]?.message ?? "", /not closed/);
  });

  it("rejects a reference to a context that was not provided instead of leaving the text in place", T, () => {
    const problem = only(problemsOf(`jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \${{ github.sha }}\n`));
    assert.match(problem.message, /github context was not provided/);
    assert.equal(problem.column, 19);
  });

  it("rejects a secret inside run: and tells to pass it through env:", T, () => {
    const problem = only(
      problemsOf(`jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: curl -H "\${{ secrets.TOKEN }}" x\n`),
    );
    assert.deepEqual([problem.line, problem.key], [5, "jobs.a.steps[0].run"]);
    assert.match(problem.message, /pass it through the step's env:/);
    assert.doesNotMatch(problem.message, /curl/);
  });

  it("plans a whole-value secret in env: as a reference the executor resolves, at every level", T, () => {
    const workflow = parseWorkflow(
      `env:
  A: \${{ secrets.A }}
jobs:
  a:
    runs-on: x
    env:
      B: "\${{ secrets.B }}"
    steps:
      - run: echo "$A $B $C"
        env:
          C: \${{ secrets.C }}
`,
      { file: "ci.yml" },
    );
    assert.deepEqual(workflow.jobs[0]?.steps[0]?.env, {
      A: { fromSecret: "A" },
      B: { fromSecret: "B" },
      C: { fromSecret: "C" },
    });
  });

  it("rejects a secret mixed into other env text, or read back through env.X", T, () => {
    const problems = problemsOf(
      `jobs:
  a:
    runs-on: x
    env:
      AUTH: Bearer \${{ secrets.TOKEN }}
      TOKEN: \${{ secrets.TOKEN }}
    steps:
      - run: echo \${{ env.TOKEN }}
`,
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [5, "jobs.a.env.AUTH"],
        [8, "jobs.a.steps[0].run"],
      ],
    );
    assert.match(problems[0]?.message ?? "", /whole env: value/);
    assert.match(problems[1]?.message ?? "", /read it as \$TOKEN/);
  });

  it("rejects a reference to an object", T, () => {
    const problem = only(
      problemsOf(`jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \${{ github.event }}\n`, CONTEXTS),
    );
    assert.match(problem.message, /github\.event is an object/);
  });
});
