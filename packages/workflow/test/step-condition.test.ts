import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluateStepCondition, parseWorkflow, WorkflowError } from "../src/index.ts";
import { problemsOf } from "./rejected-workflow.ts";

const T = { timeout: 5_000 };

const OK = { jobFailed: false, cancelled: false };
const FAILED = { jobFailed: true, cancelled: false };
const CANCELLED = { jobFailed: false, cancelled: true };

describe("step conditions", () => {
  it("decides each supported form for a passing, failed and cancelled job", T, () => {
    const table: Array<[string, boolean, boolean, boolean]> = [
      ["", true, false, false],
      ["success()", true, false, false],
      [`\${{ success() }}`, true, false, false],
      ["failure()", false, true, false],
      [`\${{failure()}}`, false, true, false],
      ["always()", true, true, true],
      ["cancelled()", false, false, true],
      ["!cancelled()", true, true, false],
      [`\${{ !cancelled() }}`, true, true, false],
      ["  Always()  ", true, true, true],
    ];
    for (const [text, ok, failed, cancelled] of table) {
      assert.deepEqual(
        [evaluateStepCondition(text, OK), evaluateStepCondition(text, FAILED), evaluateStepCondition(text, CANCELLED)],
        [ok, failed, cancelled],
        `condition ${JSON.stringify(text)}`,
      );
    }
  });

  it("throws unsupported_condition for any other condition", T, () => {
    assert.throws(
      () => evaluateStepCondition("github.ref == 'refs/heads/main'", OK),
      (e: unknown) => e instanceof WorkflowError && e.code === "unsupported_condition" && /always\(\)/.test(e.message),
    );
  });

  it("keeps a supported if: as written on steps and jobs", T, () => {
    const workflow = parseWorkflow(
      `jobs:\n  a:\n    if: always()\n    runs-on: x\n    steps:\n      - run: x\n        if: \${{ failure() }}\n`,
      { file: "ci.yml" },
    );
    assert.equal(workflow.jobs[0]?.ifCondition, "always()");
    assert.equal(workflow.jobs[0]?.steps[0]?.condition, `\${{ failure() }}`);
  });

  it("rejects any other if: when the workflow is parsed, at its line", T, () => {
    const problems = problemsOf(
      `jobs:
  a:
    runs-on: x
    steps:
      - run: x
        if: github.ref == 'refs/heads/main'
      - run: x
        if: !cancelled()
`,
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [6, "jobs.a.steps[0].if"],
        [8, "jobs.a.steps[1].if"],
      ],
    );
    assert.match(problems[0]?.message ?? "", /not supported yet; supported: success\(\), failure\(\), always\(\)/);
    assert.match(problems[1]?.message ?? "", /YAML reads `!cancelled\(\)` as a tag: put the whole value in quotes/);
  });
});
