export {
  type ExpressionContext,
  type ExpressionIssue,
  type ExpressionValue,
  type Interpolation,
  interpolate,
  SUPPORTED_CONTEXTS,
} from "./expressions.ts";
export { type JobRequestOrigin, toJobRequest } from "./job-request.ts";
export { type LoadWorkflowFileOptions, loadWorkflowFile } from "./load-workflow-file.ts";
export {
  DEFAULT_JOB_TIMEOUT_MINUTES,
  MAX_WORKFLOW_BYTES,
  type ParseWorkflowOptions,
  parseWorkflow,
} from "./parse-workflow.ts";
export { PlanExpressionContext } from "./plan-context.ts";
export { selectJobs } from "./select-jobs.ts";
export { DEFAULT_SHELL, resolveShell, SHELL_TEMPLATES, type ShellResolution } from "./shells.ts";
export { evaluateStepCondition, isSupportedCondition, type JobStatus, SUPPORTED_CONDITIONS } from "./step-condition.ts";
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
  PlannedCheckoutStep,
  PlannedJob,
  PlannedRunStep,
  PlannedStepDef,
  Workflow,
} from "./workflow-plan.ts";
