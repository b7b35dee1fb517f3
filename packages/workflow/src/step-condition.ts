import { type ContextValues, evaluateCondition, type JobStatus } from "./expression-engine.ts";

/**
 * Decides whether a step runs: the `if:` as written (bare or inside `${{ }}`, empty meaning
 * success()), with the implicit `success() &&` when it calls no status function. Throws
 * ExpressionError when the condition is not a valid expression.
 */
export function evaluateStepCondition(text: string, status: JobStatus, contexts: ContextValues = {}): boolean {
  return evaluateCondition(text, contexts, status);
}
