import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_SHELL, parseWorkflow, SHELL_TEMPLATES, WorkflowValidationError } from "../src/index.ts";
import { only, problemsOf } from "./rejected-workflow.ts";

const T = { timeout: 5_000 };

const REALISTIC = `name: CI
on:
  push:
    branches: [main]
env:
  LEVEL: workflow
  WORKFLOW_ONLY: w
defaults:
  run:
    shell: sh
    working-directory: /work
jobs:
  build:
    name: Build and test
    runs-on: ubuntu-24.04
    timeout-minutes: 30
    env:
      LEVEL: job
      JOB_ONLY: j
    defaults:
      run:
        shell: bash
    steps:
      - uses: actions/checkout@v4
      - name: Test
        id: test
        run: |
          make
          make test
        env:
          LEVEL: step
        timeout-minutes: 10
        continue-on-error: true
      - run: echo done
        shell: python
        working-directory: sub
  lint:
    runs-on: debian-12
    needs: build
    steps:
      - run: echo lint
`;

describe("parseWorkflow", () => {
  it("plans a realistic workflow with step env over job env over workflow env", T, () => {
    const workflow = parseWorkflow(REALISTIC, { file: ".forgejo/workflows/ci.yml" });
    assert.equal(workflow.name, "CI");
    assert.deepEqual(workflow.on, { push: { branches: ["main"] } });
    assert.deepEqual(
      workflow.jobs.map((j) => [j.key, j.name, j.runsOn, j.timeoutMinutes, j.needs]),
      [
        ["build", "Build and test", "ubuntu-24.04", 30, []],
        ["lint", "lint", "debian-12", 360, ["build"]],
      ],
    );
    const [build] = workflow.jobs;
    assert.ok(build);
    assert.deepEqual(build.env, { LEVEL: "job", WORKFLOW_ONLY: "w", JOB_ONLY: "j" });
    const test = build.steps[1];
    assert.ok(test?.kind === "run");
    assert.deepEqual(test, {
      index: 1,
      id: "test",
      name: "Test",
      kind: "run",
      script: "make\nmake test\n",
      shell: SHELL_TEMPLATES.bash,
      env: { LEVEL: "step", WORKFLOW_ONLY: "w", JOB_ONLY: "j" },
      workingDirectory: "/work",
      continueOnError: true,
      timeoutMinutes: 10,
    });
  });

  it(
    "applies defaults.run with the job's defaults overriding the workflow's and the step's own settings overriding both",
    T,
    () => {
      const workflow = parseWorkflow(REALISTIC, { file: "ci.yml" });
      const [build, lint] = workflow.jobs;
      const last = build?.steps[2];
      assert.ok(last?.kind === "run");
      assert.equal(last.shell, "python {0}");
      assert.equal(last.workingDirectory, "sub");
      assert.equal(last.name, "Run echo done");
      const lintStep = lint?.steps[0];
      assert.ok(lintStep?.kind === "run");
      assert.equal(lintStep.shell, "sh -e {0}");
      assert.equal(lintStep.workingDirectory, "/work");
    },
  );

  it("uses bash -e when no shell is given anywhere", T, () => {
    const workflow = parseWorkflow("jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: true\n", { file: "ci.yml" });
    const step = workflow.jobs[0]?.steps[0];
    assert.ok(step?.kind === "run");
    assert.equal(step.shell, DEFAULT_SHELL);
    assert.equal(DEFAULT_SHELL, "bash -e {0}");
  });

  it("turns actions/checkout into the built-in checkout step with its with: inputs", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  a:
    runs-on: x
    steps:
      - uses: actions/checkout@v4
      - uses: actions/checkout@8f4b7f84864484a7bf31766abe9204da3cbe65b3
        with:
          repository: acme/tools
          ref: main
          path: tools
          fetch-depth: 0
`,
      { file: "ci.yml" },
    );
    assert.deepEqual(workflow.jobs[0]?.steps, [
      { index: 0, name: "Run actions/checkout@v4", kind: "checkout", fetchDepth: 1, env: {}, continueOnError: false },
      {
        index: 1,
        name: "Run actions/checkout@8f4b7f84864484a7bf31766abe9204da3cbe65b3",
        kind: "checkout",
        repository: "acme/tools",
        ref: "main",
        path: "tools",
        fetchDepth: 0,
        env: {},
        continueOnError: false,
      },
    ]);
  });

  it("rejects a checkout input the built-in checkout does not have, naming the supported ones", T, () => {
    const problem = only(
      problemsOf(
        "jobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/checkout@v4\n        with:\n          lfs: true\n",
      ),
    );
    assert.equal(problem.key, "jobs.a.steps[0].with.lfs");
    assert.equal(problem.line, 7);
    assert.match(problem.message, /repository, ref, path, fetch-depth, token, submodules, clean/);
  });

  it("refuses a checkout path that leaves the workspace, as actions/checkout does", T, () => {
    const checkout = (path: string) =>
      `jobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/checkout@v4\n        with:\n          path: ${path}\n`;
    for (const outside of ["/etc", "../sibling", "a/../../b", ".."]) {
      const problem = only(problemsOf(checkout(outside)));
      assert.equal(problem.key, "jobs.a.steps[0].with.path");
      assert.match(problem.message, /is not inside the workspace/);
    }
    const inside = parseWorkflow(checkout("deps/../lib/other"), { file: "ci.yml" }).jobs[0]?.steps[0];
    assert.equal(inside?.kind === "checkout" && inside.path, "deps/../lib/other");
  });

  it("plans checkout's token (a secret, never written out), submodules and clean", T, () => {
    const step = (inputs: string) =>
      parseWorkflow(
        `jobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/checkout@v4\n        with:\n${inputs}`,
        {
          file: "ci.yml",
        },
      ).jobs[0]?.steps[0];
    assert.deepEqual(
      step(`          token: \${{ secrets.PAT }}\n          submodules: recursive\n          clean: false\n`),
      {
        index: 0,
        name: "Run actions/checkout@v4",
        kind: "checkout",
        fetchDepth: 1,
        tokenSecret: "PAT",
        submodules: "recursive",
        clean: false,
        env: {},
        continueOnError: false,
      },
    );
    assert.equal(step(`          token: \${{ github.token }}\n          submodules: false\n`)?.kind, "checkout");
    const written = only(
      problemsOf(
        "jobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/checkout@v4\n        with:\n          token: abc\n",
      ),
    );
    assert.match(written.message, /token must be \$\{\{ secrets\.NAME \}\} or \$\{\{ github\.token \}\}/);
    const submodules = only(
      problemsOf(
        "jobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/checkout@v4\n        with:\n          submodules: yes\n",
      ),
    );
    assert.match(submodules.message, /must be true, false, recursive/);
  });

  it(
    "plans uses: of a repository action with its inputs, a secret input sealed, and refuses docker:// at its line",
    T,
    () => {
      const workflow = parseWorkflow(
        `jobs:
  build:
    runs-on: x
    steps:
      - uses: actions/setup-node@v4
        with:
          node-version: 20
          token: \${{ secrets.NPM }}
          cache: \${{ steps.x.outputs.y }}
      - uses: https://code.forgejo.org/actions/cache/restore@v4
`,
        { file: "ci.yml" },
      );
      const [setup, cache] = workflow.jobs[0]?.steps ?? [];
      assert.deepEqual(setup?.kind === "action" && [setup.name, setup.uses, setup.inputs], [
        "Run actions/setup-node@v4",
        "actions/setup-node@v4",
        { "node-version": "20", token: { fromSecret: "NPM" }, cache: `\${{ steps.x.outputs.y }}` },
      ]);
      assert.equal(cache?.kind === "action" && cache.uses, "https://code.forgejo.org/actions/cache/restore@v4");
      const problem = only(
        problemsOf(`jobs:
  build:
    runs-on: x
    steps:
      - run: echo hi
      - uses: docker://alpine:3.20
`),
      );
      assert.deepEqual(
        [problem.file, problem.line, problem.column, problem.key],
        ["ci.yml", 6, 15, "jobs.build.steps[1].uses"],
      );
      assert.match(problem.message, /docker:\/\/alpine:3\.20/);
      assert.match(problem.suggestion ?? "", /Docker actions are not run/);
      assert.match(
        only(problemsOf("jobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/setup-node\n")).message,
        /names no version/,
      );
    },
  );

  it("rejects services: and container: with their line and the alternative", T, () => {
    const problems = problemsOf(`jobs:
  build:
    runs-on: x
    container: node:20
    services:
      db:
        image: postgres
    steps:
      - run: echo hi
`);
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [4, "jobs.build.container"],
        [5, "jobs.build.services"],
      ],
    );
    assert.match(problems[0]?.suggestion ?? "", /pick a label whose image has what you need/);
    assert.match(problems[1]?.suggestion ?? "", /start the service from a run: step/);
  });

  it("rejects job-level uses: (reusable workflows)", T, () => {
    const problems = problemsOf(`jobs:
  call:
    uses: ./.github/workflows/other.yml
`);
    const byKey = new Map(problems.map((p) => [p.key, p]));
    assert.match(byKey.get("jobs.call.uses")?.message ?? "", /reusable workflows/);
  });

  it("reports every problem of a file in one error, each as file:line:col: key: message", T, () => {
    let error: unknown;
    try {
      parseWorkflow(
        `jobs:
  a:
    runs-on: x
    timeout-minutes: soon
    colour: blue
    steps:
      - name: nothing to do
      - run: echo
        uses: actions/checkout@v4
      - run: echo
        shel: bash
`,
        { file: "wf.yml" },
      );
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof WorkflowValidationError);
    assert.deepEqual(
      error.problems.map((p) => `${p.line} ${p.key}`),
      [
        "5 jobs.a.colour",
        "4 jobs.a.timeout-minutes",
        "7 jobs.a.steps[0]",
        "9 jobs.a.steps[1]",
        "11 jobs.a.steps[2].shel",
      ],
    );
    assert.match(error.message, /^wf\.yml:4:22: jobs\.a\.timeout-minutes: must be a number of minutes/m);
    assert.match(error.message, /^wf\.yml:5:5: jobs\.a\.colour: unknown key `colour`; allowed here: name, runs-on, /m);
    assert.match(error.message, /^wf\.yml:11:9: jobs\.a\.steps\[2\]\.shel: unknown key `shel`; allowed here: .*shell/m);
    assert.equal(error.code, "invalid_workflow");
  });

  it("reports a YAML syntax error with its line", T, () => {
    const problem = only(problemsOf("jobs:\n  a:\n    runs-on: x: y\n    steps: []\n"));
    assert.deepEqual([problem.file, problem.line, problem.column], ["ci.yml", 3, 14]);
    assert.match(problem.message, /YAML syntax error/);
    const duplicate = only(problemsOf("jobs:\n  a:\n    runs-on: x\n    runs-on: y\n"));
    assert.equal(duplicate.line, 4);
    assert.match(duplicate.message, /unique/);
  });

  it("reports a tab-indented line at that line", T, () => {
    const problem = problemsOf("jobs:\n  a:\n\truns-on: x\n")[0];
    assert.equal(problem?.line, 3);
  });

  it("rejects a workflow whose jobs: is empty", T, () => {
    const problem = only(problemsOf("on: push\njobs: {}\n"));
    assert.deepEqual([problem.line, problem.key], [2, "jobs"]);
    assert.match(problem.message, /has no jobs/);
    assert.match(only(problemsOf("on: push\njobs:\n")).message, /has no jobs/);
  });

  it("rejects a timeout-minutes that is not a number", T, () => {
    const problem = only(
      problemsOf("jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: x\n        timeout-minutes: '5'\n"),
    );
    assert.deepEqual([problem.line, problem.key], [6, "jobs.a.steps[0].timeout-minutes"]);
    assert.match(problem.message, /must be a number of minutes greater than 0, not the string `5`/);
  });

  it("rejects env values that are not scalars and env that is not a mapping", T, () => {
    const problems = problemsOf(
      "env: [A]\njobs:\n  a:\n    runs-on: x\n    env:\n      A: {b: 1}\n    steps:\n      - run: x\n",
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [1, "env"],
        [6, "jobs.a.env.A"],
      ],
    );
  });

  it("keeps env numbers as written", T, () => {
    const workflow = parseWorkflow(
      "env:\n  V: 1.10\n  B: true\n  E:\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: x\n",
      {
        file: "ci.yml",
      },
    );
    assert.deepEqual(workflow.jobs[0]?.env, { V: "1.10", B: "true", E: "" });
  });

  it("takes the last label other than self-hosted from a runs-on list", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  a:
    runs-on: [self-hosted, linux, ubuntu-24.04]
    steps: [{run: x}]
  b:
    runs-on:
      - omnios-r151054
      - self-hosted
    steps: [{run: x}]
`,
      { file: "ci.yml" },
    );
    assert.deepEqual(
      workflow.jobs.map((j) => j.runsOn),
      ["ubuntu-24.04", "omnios-r151054"],
    );
  });

  it("rejects a job without runs-on or with only self-hosted", T, () => {
    const problems = problemsOf(
      "jobs:\n  a:\n    steps: [{run: x}]\n  b:\n    runs-on: [self-hosted]\n    steps: [{run: x}]\n",
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [2, "jobs.a"],
        [5, "jobs.b.runs-on"],
      ],
    );
  });

  it("maps shell names to command templates and keeps custom templates", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  a:
    runs-on: x
    steps:
      - {run: x, shell: bash}
      - {run: x, shell: sh}
      - {run: x, shell: python}
      - {run: x, shell: "perl {0}"}
`,
      { file: "ci.yml" },
    );
    assert.deepEqual(
      workflow.jobs[0]?.steps.map((s) => (s.kind === "run" ? s.shell : "")),
      ["bash --noprofile --norc -eo pipefail {0}", "sh -e {0}", "python {0}", "perl {0}"],
    );
  });

  it("rejects pwsh and a custom shell without {0}", T, () => {
    const problems = problemsOf(
      "jobs:\n  a:\n    runs-on: x\n    steps:\n      - {run: x, shell: pwsh}\n      - {run: x, shell: perl}\n",
    );
    assert.equal(problems.length, 2);
    assert.match(problems[0]?.message ?? "", /pwsh.*not installed/);
    assert.match(problems[1]?.message ?? "", /must contain \{0\}/);
    assert.deepEqual(
      problems.map((p) => p.key),
      ["jobs.a.steps[0].shell", "jobs.a.steps[1].shell"],
    );
  });

  it("rejects needs: naming a job that does not exist", T, () => {
    const problem = only(problemsOf("jobs:\n  a:\n    runs-on: x\n    needs: [bild]\n    steps: [{run: x}]\n"));
    assert.equal(problem.key, "jobs.a.needs");
    assert.match(problem.message, /unknown job `bild`; jobs in this file: a/);
  });
});
