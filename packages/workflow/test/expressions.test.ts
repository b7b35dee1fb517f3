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
  it("writes numbers into a script as the Actions runner does: 15 significant digits, E notation", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - run: echo \${{ 12345678901234567890 }} \${{ fromJSON('1e-7') }} \${{ 0.5 }} \${{ inputs.level }}
`,
      { file: "ci.yml", contexts: CONTEXTS },
    );
    const step = workflow.jobs[0]?.steps[0];
    assert.equal(step?.kind === "run" ? step.script : undefined, "echo 1.23456789012346E+19 1E-07 0.5 3");
  });

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
          echo \${{ github.ref }}
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
    assert.equal(run.script, "echo refs/heads/main\necho 3 it's []\n");
    assert.ok(checkout?.kind === "checkout");
    assert.equal(checkout.ref, "0123abc");
  });

  it("evaluates operators and functions when planning, and keeps text that reads steps.* for the executor", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  a:
    runs-on: x
    steps:
      - id: one
        run: echo \${{ github.sha == '0123abc' }} \${{ format('{0}-{1}', inputs.level, 0x10) }} \${{ github.event }}
      - run: |
          echo start
          echo \${{ steps.one.outputs.v }} and \${{ github.sha }}
`,
      { file: "ci.yml", contexts: CONTEXTS },
    );
    const [first, second] = workflow.jobs[0]?.steps ?? [];
    assert.ok(first?.kind === "run" && second?.kind === "run");
    assert.equal(first.script, `echo true 3-16 {\n  "head_commit": {\n    "id": "x"\n  }\n}`);
    assert.equal(second.script, `echo start\necho \${{ steps.one.outputs.v }} and \${{ github.sha }}\n`);
  });

  it("rejects a syntax error at its line and column, naming the expression, the position and the reason", T, () => {
    const problems = problemsOf(
      `jobs:
  a:
    runs-on: x
    steps:
      - run: |
          echo start
          echo \${{ github.sha == }} and \${{ nosuch.x }}
`,
      CONTEXTS,
    );
    assert.equal(problems.length, 2);
    const [first, second] = problems;
    assert.deepEqual([first?.line, first?.column, first?.key], [7, 16, "jobs.a.steps[0].run"]);
    assert.match(first?.message ?? "", /expression `github\.sha ==`, column 12: Unexpected end of expression/);
    assert.deepEqual([second?.line, second?.column], [7, 41]);
    assert.match(second?.message ?? "", /`nosuch\.x`, column 1: unknown context: 'nosuch'/);
  });

  it("rejects an unclosed expression and an unknown function", T, () => {
    const problems = problemsOf(
      `jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \${{ frob('{0}', 1) }}\n      - run: echo \${{ env.X\n`,
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [5, "jobs.a.steps[0].run"],
        [6, "jobs.a.steps[1].run"],
      ],
    );
    assert.match(problems[0]?.message ?? "", /unknown function: 'frob'/);
    assert.match(problems[1]?.message ?? "", /not closed/);
  });

  it("reads a context the planner was not given as empty, as Actions does with a missing property", T, () => {
    const workflow = parseWorkflow(`jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo [\${{ matrix.os }}]\n`, {
      file: "ci.yml",
    });
    const [step] = workflow.jobs[0]?.steps ?? [];
    assert.ok(step?.kind === "run");
    assert.equal(step.script, "echo []");
  });

  it("rejects run-time values where only plan-time values make sense", T, () => {
    const problem = only(
      problemsOf(`jobs:\n  a:\n    runs-on: \${{ steps.x.outputs.label }}\n    steps:\n      - run: echo\n`),
    );
    assert.equal(problem.key, "jobs.a.runs-on");
  });

  it(
    "keeps text of a step that reads env for the executor, since an earlier step may change it through GITHUB_ENV",
    T,
    () => {
      const workflow = parseWorkflow(
        `env:\n  A: a\njobs:\n  j:\n    runs-on: x\n    env:\n      B: \${{ env.A }}-b\n    steps:\n      - name: \${{ env.A }}\n        run: echo \${{ env.B }} \${{ github.sha }}\n        env:\n          C: \${{ env.A }}-c\n`,
        { file: "ci.yml", contexts: CONTEXTS },
      );
      const [job] = workflow.jobs;
      assert.deepEqual(job?.env, { A: "a", B: "a-b" }, "the job's env is planned: no step has run yet");
      const step = job?.steps[0];
      assert.ok(step?.kind === "run");
      assert.equal(step.script, `echo \${{ env.B }} \${{ github.sha }}`);
      assert.equal(step.name, `\${{ env.A }}`);
      assert.equal(step.env.C, `\${{ env.A }}-c`);
    },
  );

  it("keeps a secret read in a step's run, name, working-directory or env, or in env text, for the executor", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  a:
    runs-on: x
    env:
      AUTH: Bearer \${{ secrets.TOKEN }}
    steps:
      - name: deploy \${{ secrets.Region }}
        run: curl -H "\${{ secrets.TOKEN }}" \${{ toJSON(secrets) == '' }}
        env:
          KEY: key-\${{ secrets.KEY }}
`,
      { file: "ci.yml", contexts: CONTEXTS },
    );
    const [job] = workflow.jobs;
    assert.equal(job?.env.AUTH, `Bearer \${{ secrets.TOKEN }}`);
    const step = job?.steps[0];
    assert.ok(step?.kind === "run");
    assert.equal(step.script, `curl -H "\${{ secrets.TOKEN }}" \${{ toJSON(secrets) == '' }}`);
    assert.equal(step.env.KEY, `key-\${{ secrets.KEY }}`);
  });

  it("still rejects a secret where GitHub has none: runs-on, a job's name, and env.X holding a secret there", T, () => {
    const problems = problemsOf(
      `jobs:
  a:
    name: \${{ secrets.NAME }}
    runs-on: \${{ env.TOKEN }}
    env:
      TOKEN: \${{ secrets.TOKEN }}
    steps:
      - run: echo
`,
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [3, "jobs.a.name"],
        [4, "jobs.a.runs-on"],
        [4, "jobs.a.runs-on"],
      ],
    );
    assert.match(problems[0]?.message ?? "", /secrets cannot be used here/);
    assert.match(problems[1]?.message ?? "", /env\.TOKEN holds the secret TOKEN/);
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
});
