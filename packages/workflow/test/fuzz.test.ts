import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ExpressionError, evaluateCondition, evaluateExpression, parseWorkflow, WorkflowError } from "../src/index.ts";

// Bounded runs: a few thousand inputs in well under the suite's budget for this package.
const RUNS = { numRuns: 2_000 };

const TOKENS = [
  "github",
  ".",
  "ref",
  "[",
  "]",
  "(",
  ")",
  "*",
  "!",
  "==",
  "!=",
  "<",
  "<=",
  ">",
  ">=",
  "&&",
  "||",
  ",",
  "'a'",
  "''",
  "1",
  "0x1f",
  "1e3",
  "null",
  "true",
  "false",
  "contains",
  "format",
  "fromJSON",
  "toJSON",
  "success",
  "always",
  "steps",
  "env",
  "'{0}'",
  "join",
  " ",
];

const expressionLike = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((t) => t.join(""));
const anything = fc.oneof(expressionLike, fc.string({ maxLength: 200 }));
const CONTEXTS = { github: { ref: "refs/heads/main", list: [1, "a", { b: null }] }, env: { A: "1" }, steps: {} };

function onlyTypedErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ExpressionError || error instanceof WorkflowError, `untyped error: ${String(error)}`);
  }
}

describe("fuzzing the expression parser, evaluator and workflow parser", () => {
  it("evaluates or throws our typed error for any expression text, never anything else", () => {
    fc.assert(
      fc.property(anything, (text) => {
        onlyTypedErrors(() => evaluateExpression(text, CONTEXTS));
        onlyTypedErrors(() => evaluateCondition(text, CONTEXTS, { jobFailed: false, cancelled: false }));
      }),
      RUNS,
    );
  });

  it("plans or reports problems for any workflow text with expressions in it, never throwing anything else", () => {
    const workflow = fc
      .tuple(anything, anything, anything)
      .map(
        ([a, b, c]) =>
          `jobs:\n  j:\n    runs-on: x\n    steps:\n      - run: echo \${{ ${a} }}\n        if: ${JSON.stringify(b)}\n        env:\n          X: ${JSON.stringify(c)}\n`,
      );
    fc.assert(
      fc.property(fc.oneof(workflow, fc.string({ maxLength: 300 })), (text) => {
        onlyTypedErrors(() => parseWorkflow(text, { file: "fuzz.yml", contexts: { github: CONTEXTS.github } }));
      }),
      { numRuns: 1_000 },
    );
  });

  it("rejects a deeply nested expression with a typed error instead of overflowing the stack", () => {
    assert.throws(() => evaluateExpression(`${"(".repeat(5_000)}1${")".repeat(5_000)}`, {}), ExpressionError);
    assert.throws(() => evaluateExpression("!".repeat(100_000), {}), ExpressionError);
  });
});
