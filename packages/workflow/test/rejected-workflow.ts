import assert from "node:assert/strict";
import { parseWorkflow, type WorkflowProblem, WorkflowValidationError } from "../src/index.ts";

/** Parses `text` expecting it to be rejected, and returns the problems found. */
export function problemsOf(text: string, contexts = {}): readonly WorkflowProblem[] {
  try {
    parseWorkflow(text, { file: "ci.yml", contexts });
  } catch (error) {
    assert.ok(error instanceof WorkflowValidationError, `expected WorkflowValidationError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail("the workflow was accepted");
}

export function only(problems: readonly WorkflowProblem[]): WorkflowProblem {
  assert.equal(problems.length, 1, `expected one problem, got:\n${problems.map((p) => JSON.stringify(p)).join("\n")}`);
  const [problem] = problems;
  assert.ok(problem);
  return problem;
}
