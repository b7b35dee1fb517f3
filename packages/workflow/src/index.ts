export { type ActionReference, parseActionReference } from "./action-reference.ts";
export { type ForgeService, unsupportedActionAdvice } from "./action-suggestions.ts";
export {
  CONTEXT_NAMES,
  type ContextValues,
  conditionExpression,
  type EvaluateOptions,
  ExpressionError,
  type ExpressionRefs,
  type ExpressionSpan,
  evaluateCondition,
  evaluateExpression,
  findExpressions,
  interpolateText,
  isTruthy,
  type JobStatus,
  type ParsedExpression,
  parseCondition,
  parseExpression,
  STATUS_FUNCTIONS,
  valueToText,
} from "./expression-engine.ts";
export { type ExpressionIssue, type Interpolation, interpolate, type PlanScope } from "./expressions.ts";
export { resolveInputs } from "./inputs.ts";
export { type JobRequestOrigin, toJobRequest } from "./job-request.ts";
export { parseKdlWorkflow } from "./kdl/parse-kdl-workflow.ts";
export { isKdlWorkflow, type LoadWorkflowFileOptions, loadWorkflowFile } from "./load-workflow-file.ts";
export {
  expandMatrix,
  MAX_MATRIX_JOBS,
  type MatrixCombination,
  type MatrixSpec,
  matrixJobName,
  type StrategyContext,
} from "./matrix.ts";
export { nearestName } from "./nearest-name.ts";
export {
  DEFAULT_JOB_TIMEOUT_MINUTES,
  MAX_WORKFLOW_BYTES,
  type ParseWorkflowOptions,
  parseWorkflow,
} from "./parse-workflow.ts";
export { planAfterNeeds } from "./plan-after-needs.ts";
export { type FinishedJob, type NeedsContext, type RunGraphOptions, runGraph } from "./run-graph.ts";
export { selectJobs } from "./select-jobs.ts";
export { DEFAULT_SHELL, resolveShell, SHELL_TEMPLATES, type ShellResolution } from "./shells.ts";
export { evaluateStepCondition } from "./step-condition.ts";
export {
  formatProblem,
  WorkflowError,
  type WorkflowErrorCode,
  type WorkflowProblem,
  WorkflowValidationError,
} from "./workflow-errors.ts";
export type {
  Env,
  EnvValue,
  PlanContexts,
  PlannedActionStep,
  PlannedCheckoutStep,
  PlannedJob,
  PlannedRunStep,
  PlannedStepDef,
  Workflow,
} from "./workflow-plan.ts";
