import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { JobSource } from "@solstice/protocol";
import {
  DEFAULT_SHELL,
  loadWorkflowFile,
  type PlannedJob,
  parseKdlWorkflow,
  parseWorkflow,
  selectJobs,
  toJobRequest,
  type WorkflowProblem,
  WorkflowValidationError,
} from "../src/index.ts";
import { only } from "./rejected-workflow.ts";

const T = { timeout: 5_000 };
const EXAMPLES = new URL("../../../examples/", import.meta.url);
const SEED = readFileSync(new URL("solstice-ci.kdl", EXAMPLES), "utf8");
const SEED_DOC = new URL("../../../../shared/seeds/architecture-overview.txt", import.meta.url);

function plan(text: string, contexts = {}) {
  return parseKdlWorkflow(text, { file: ".solstice/workflow.kdl", contexts });
}

function problemsOf(text: string): readonly WorkflowProblem[] {
  try {
    plan(text);
  } catch (error) {
    assert.ok(error instanceof WorkflowValidationError, `expected WorkflowValidationError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail("the workflow was accepted");
}

/** What a job does, without the bookkeeping: label, then each step as kind/name/script. */
function outline(job: PlannedJob) {
  return {
    key: job.key,
    name: job.name,
    runsOn: job.runsOn,
    steps: job.steps.map((s) => (s.kind === "run" ? `${s.name}: ${s.script}` : `${s.name} (checkout)`)),
  };
}

describe("KDL workflows: the seed's example", () => {
  it("examples/solstice-ci.kdl is the example of the original architecture overview, word for word", T, (t) => {
    if (!existsSync(SEED_DOC)) return t.skip("../shared/seeds is not beside this checkout");
    // The overview is stored as one line: compare with runs of whitespace made one space.
    const flat = (text: string) => text.replace(/\s+/g, " ").trim();
    assert.ok(flat(readFileSync(SEED_DOC, "utf8")).includes(flat(SEED)));
  });

  it("plans to a build job on illumos-stable and a lint job on ubuntu-22.04, each checking out first", T, () => {
    const workflow = plan(SEED);
    assert.equal(workflow.name, "Solstice CI");
    assert.deepEqual(workflow.jobs.map(outline), [
      {
        key: "build",
        name: "build",
        runsOn: "illumos-stable",
        steps: [
          "Check out the repository (checkout)",
          "Format: cargo fmt --check",
          "Clippy: cargo clippy -- -D warnings",
          "Test: cargo test --workspace",
        ],
      },
      {
        key: "lint",
        name: "lint",
        runsOn: "ubuntu-22.04",
        steps: ["Check out the repository (checkout)", "Lint: ruff check ."],
      },
    ]);
    for (const job of workflow.jobs) {
      assert.deepEqual(
        job.steps.map((s) => s.index),
        job.steps.map((_, i) => i),
      );
      assert.equal(job.timeoutMinutes, 360);
      for (const step of job.steps) if (step.kind === "run") assert.equal(step.shell, DEFAULT_SHELL);
    }
  });

  it("plans the same steps as the Actions workflow that says the same thing", T, () => {
    const yaml = parseWorkflow(
      [
        "name: Solstice CI",
        "on: push",
        "jobs:",
        "  build:",
        "    runs-on: illumos-stable",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "        name: Check out the repository",
        "      - { name: Format, run: cargo fmt --check }",
        "      - { name: Clippy, run: cargo clippy -- -D warnings }",
        "      - { name: Test, run: cargo test --workspace }",
        "  lint:",
        "    runs-on: ubuntu-22.04",
        "    steps:",
        "      - uses: actions/checkout@v4",
        "        name: Check out the repository",
        "      - { name: Lint, run: ruff check . }",
      ].join("\n"),
      { file: "ci.yml" },
    );
    assert.deepEqual(plan(SEED).jobs, yaml.jobs);
  });

  it("becomes JobRequests as any workflow does: the executor gets the same message", T, () => {
    const workflow = plan(SEED);
    const [build] = selectJobs(workflow, "build");
    assert.ok(build);
    const request = toJobRequest(workflow, build, {
      source: JobSource.MANUAL,
      owner: "test",
      repository: { url: "", fullName: "local/x", commitSha: "", ref: "" },
    });
    assert.equal(request.workflowPath, ".solstice/workflow.kdl");
    assert.equal(request.runsOn, "illumos-stable");
    assert.deepEqual(
      request.steps.map((s) => [s.name, s.action.case]),
      [
        ["Check out the repository", "checkout"],
        ["Format", "run"],
        ["Clippy", "run"],
        ["Test", "run"],
      ],
    );
  });

  it("reads the same workflow in KDL 1 syntax (bare true/false, as the original files were written)", T, () => {
    // KDL 1 also needs each node ended by a newline or ";", even before "}".
    const v1 = plan('workflow {\n  job id="a" runs_on="tiny" checkout=false {\n    step run="true"\n  }\n}\n');
    const v2 = plan('workflow { job id="a" runs_on="tiny" checkout=#false { step run="true" } }');
    assert.deepEqual(v1.jobs, v2.jobs);
    assert.deepEqual(
      v1.jobs[0]?.steps.map((s) => s.kind),
      ["run"],
    );
    assert.equal(v1.name, ".solstice/workflow.kdl", "a workflow without name= is named after its file");
  });
});

describe("KDL workflows: what KDL adds", () => {
  it("runs a job's setup after the checkout and before the steps, with env workflow < job < step", T, () => {
    const workflow = plan(`workflow {
      env LEVEL="workflow" ONLY_W="w"
      job id="b" name="Build" runs_on="tiny" timeout_minutes=15 {
        env LEVEL="job"
        setup run="./ci/setup.sh"
        step name="Test" run="make test" { env LEVEL="step" }
        step run="echo $LEVEL"
      }
    }`);
    const [job] = workflow.jobs;
    assert.ok(job);
    assert.deepEqual(outline(job).steps, [
      "Check out the repository (checkout)",
      "Setup: ./ci/setup.sh",
      "Test: make test",
      "Run echo $LEVEL: echo $LEVEL",
    ]);
    assert.equal(job.name, "Build");
    assert.equal(job.timeoutMinutes, 15);
    assert.deepEqual(job.env, { LEVEL: "job", ONLY_W: "w" });
    assert.deepEqual(job.steps[2]?.env, { LEVEL: "step", ONLY_W: "w" });
    assert.deepEqual(job.steps[3]?.env, { LEVEL: "job", ONLY_W: "w" });
  });

  it("plans a multi-OS job as one job per image, each with its os overrides, as a matrix over os", T, async () => {
    const workflow = await loadWorkflowFile(new URL("portable.kdl", EXAMPLES).pathname, { file: "portable.kdl" });
    assert.deepEqual(workflow.jobs.map(outline), [
      {
        key: "portable",
        name: "portable (tiny)",
        runsOn: "tiny",
        steps: [
          "Check out the repository (checkout)",
          "Setup: echo setting up for $GREETING",
          `Where: echo on tiny: $(uname -r) flavour=\${FLAVOUR:-plain}`,
          "Kernel: uname -sr",
        ],
      },
      {
        key: "portable",
        name: "portable (tiny-fast)",
        runsOn: "tiny-fast",
        steps: [
          "Check out the repository (checkout)",
          "Setup: echo setting up the fast image",
          `Where: echo on tiny-fast: $(uname -r) flavour=\${FLAVOUR:-plain}`,
          "Kernel: uname -s",
        ],
      },
    ]);
    const [tiny, fast] = workflow.jobs;
    assert.deepEqual(tiny?.env, { GREETING: "hello" });
    assert.deepEqual(fast?.env, { GREETING: "hello", FLAVOUR: "fast" });
    assert.deepEqual(fast?.matrix, { os: "tiny-fast" });
    // One image failing does not cancel the others.
    assert.equal(fast?.strategy?.["fail-fast"], false);
    assert.equal(fast?.timeoutMinutes, 10);
    assert.equal(selectJobs(workflow, "portable").length, 2, "--job portable runs it on every image");
  });

  it("takes a secret as a whole env value, sealed like the Actions front-end's, and refuses it in a script", T, () => {
    const workflow = plan(`workflow {
      job id="deploy" runs_on="tiny" { step run="./deploy" { env TOKEN="\${{ secrets.DEPLOY_TOKEN }}" } }
    }`);
    assert.deepEqual(workflow.jobs[0]?.steps[1]?.env, { TOKEN: { fromSecret: "DEPLOY_TOKEN" } });
    const problem = only(
      problemsOf(`workflow {\n  job id="a" runs_on="tiny" { step run="echo \${{ secrets.X }}" }\n}`),
    );
    assert.equal(problem.line, 2);
    assert.equal(problem.column, 46, "the column of the expression inside the string");
    assert.match(problem.message, /secrets are not substituted into scripts/);
  });
});

describe("KDL workflows: problems, as precise as the Actions front-end's", () => {
  it(
    "reports every problem at once, in reading order, as file:line:col: key: message, with the name probably meant",
    T,
    () => {
      const problems = problemsOf(
        [
          "workflow {", //                                          1
          '  jb id="x"', //                                          2
          '  job id="build" runs-on="tiny" timeout=5 {', //          3
          '    stpe run="make"', //                                  4
          '    step "Format" run="cargo fmt"', //                    5
          '    step name="no script"', //                            6
          "  }", //                                                  7
          "}", //                                                    8
        ].join("\n"),
      );
      const rows = problems.map((p) => `${p.line}:${p.column} ${p.key}: ${p.message} | ${p.suggestion ?? ""}`);
      assert.deepEqual(rows, [
        "2:3 workflow.jb: unknown node `jb` here; allowed: env, job | did you mean `job`?",
        '3:3 job.build: has no runs_on: name the image to run on, e.g. runs_on="debian-12", or several: runs_on "tiny" "debian-12" | ',
        "3:18 job.build.runs-on: `job` has no property `runs-on`; its properties: id, name, runs_on, timeout_minutes, checkout | did you mean `runs_on`?",
        "3:33 job.build.timeout: `job` has no property `timeout`; its properties: id, name, runs_on, timeout_minutes, checkout | did you mean `timeout_minutes`?",
        "4:5 job.build.stpe: unknown node `stpe` here; allowed: runs_on, env, setup, os, step | did you mean `step`?",
        '5:10 job.build.step[0]: `step` takes no arguments, only properties (name=value) | did you mean name="Format"?',
        '6:5 job.build.step[1]: a step needs run=, e.g. step name="Test" run="make test" | ',
      ]);
    },
  );

  it("says where a node belongs when it is written in the wrong place", T, () => {
    const problem = only(problemsOf('workflow {\n  job id="a" runs_on="tiny" { step run="x" }\n  step run="y"\n}'));
    assert.deepEqual([problem.line, problem.column, problem.key], [3, 3, "workflow.step"]);
    assert.equal(problem.suggestion, "`step` belongs inside job { }");
    const top = only(problemsOf('job id="a" runs_on="tiny" { step run="x" }'));
    assert.equal(top.suggestion, "`job` belongs inside workflow { }");
  });

  it("refuses an os block or override for an image the job does not run on, and a repeated label", T, () => {
    const problems = problemsOf(`workflow {
  job id="m" {
    runs_on "tiny" "tiny"
    os "debian-12" { setup run="x" }
    step run="y" { os "freebsd" run="z" }
  }
}`);
    assert.deepEqual(
      problems.map((p) => `${p.line}:${p.column} ${p.key}: ${p.message}`),
      [
        "3:20 job.m.runs_on: label `tiny` is listed twice",
        "4:8 job.m.os: `debian-12` is not one of this job's runs_on labels (tiny)",
        "5:23 job.m.step[0].os: `freebsd` is not one of this job's runs_on labels (tiny)",
      ],
    );
  });

  it("reports a KDL syntax error with its line and column, before anything else", T, () => {
    const problem = only(problemsOf('workflow {\n  job id="a" runs_on="tiny" {\n    step run=="x"\n  }\n}\n'));
    assert.equal(problem.key, "");
    assert.match(problem.message, /^KDL syntax error: /);
    assert.equal(problem.line, 3);
  });

  it("refuses wrong value types with what was written", T, () => {
    const problems = problemsOf(
      'workflow {\n  job id="a" runs_on=5 timeout_minutes="10" checkout="no" { step run=#null }\n}',
    );
    assert.deepEqual(
      problems.map((p) => `${p.key}: ${p.message}`),
      [
        "job.a.runs_on: must be a string, not number 5",
        'job.a.timeout_minutes: must be a number of minutes greater than 0, not the string "10"',
        'job.a.checkout: must be #true or #false, not the string "no"',
        "job.a.step[0].run: must be a string, not #null",
      ],
    );
  });

  it("an empty file, a file of comments, and a workflow without jobs say what to write", T, () => {
    assert.match(only(problemsOf("")).message, /has no workflow/);
    assert.match(only(problemsOf("// nothing here\n")).message, /has no workflow/);
    assert.match(only(problemsOf('workflow name="x"')).message, /has no jobs/);
  });
});
