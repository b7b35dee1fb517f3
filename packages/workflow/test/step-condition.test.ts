import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ExpressionError, evaluateStepCondition, parseWorkflow } from "../src/index.ts";
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

  it("evaluates any expression, with the implicit success() && when no status function is called", T, () => {
    const contexts = { github: { ref: "refs/heads/main" }, steps: { a: { outcome: "failure", outputs: { n: "3" } } } };
    const table: Array<[string, boolean, boolean]> = [
      ["github.ref == 'refs/heads/main'", true, false],
      [`\${{ github.ref == 'refs/heads/main' }}`, true, false],
      ["steps.a.outcome == 'failure' && steps.a.outputs.n >= 3", true, false],
      ["failure() && steps.a.outcome == 'failure'", false, true],
      ["always() && startsWith(github.ref, 'refs/heads/')", true, true],
      ["github.ref == 'refs/heads/dev' || always()", true, true],
    ];
    for (const [text, ok, failed] of table) {
      assert.deepEqual(
        [evaluateStepCondition(text, OK, contexts), evaluateStepCondition(text, FAILED, contexts)],
        [ok, failed],
        `condition ${JSON.stringify(text)}`,
      );
    }
  });

  it("throws a typed error naming the expression, the column and the reason for an invalid condition", T, () => {
    assert.throws(
      () => evaluateStepCondition("github.ref == = 'x'", OK),
      (e: unknown) =>
        e instanceof ExpressionError &&
        e.code === "invalid_expression" &&
        e.column === 15 &&
        /github\.ref == = 'x'/.test(e.message),
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

  it("rejects an invalid if: or one that reads secrets when the workflow is parsed, at its line", T, () => {
    const problems = problemsOf(
      `jobs:
  a:
    runs-on: x
    steps:
      - run: x
        if: github.ref == 
      - run: x
        if: !cancelled()
      - run: x
        if: secrets.TOKEN != ''
`,
    );
    assert.deepEqual(
      problems.map((p) => [p.line, p.key]),
      [
        [6, "jobs.a.steps[0].if"],
        [8, "jobs.a.steps[1].if"],
        [10, "jobs.a.steps[2].if"],
      ],
    );
    assert.match(problems[0]?.message ?? "", /Unexpected end of expression/);
    assert.match(problems[1]?.message ?? "", /YAML reads `!cancelled\(\)` as a tag: put the whole value in quotes/);
    assert.match(problems[2]?.message ?? "", /secrets cannot be read in if:/);
  });
});
