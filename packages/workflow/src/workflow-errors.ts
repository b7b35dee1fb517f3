/** Where a workflow file is wrong, precise enough to jump to. Lines and columns count from 1. */
export interface WorkflowProblem {
  file: string;
  line: number;
  column: number;
  /** Dotted path of the offending key, e.g. `jobs.build.steps[2].uses`; empty for YAML syntax errors. */
  key: string;
  /** What is wrong. */
  message: string;
  /** What to do about it, when we can say (e.g. the key that was probably meant). */
  suggestion?: string;
}

export type WorkflowErrorCode =
  | "invalid_expression"
  | "invalid_input"
  | "invalid_workflow"
  | "unknown_job"
  | "unreadable_workflow"
  | "unsupported_condition";

export class WorkflowError extends Error {
  override name = "WorkflowError";
  /** The message without the code and the hint, for output that shows those apart. */
  readonly detail: string;

  constructor(
    readonly code: WorkflowErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(`[${code}] ${message}${hint === undefined ? "" : ` (hint: ${hint})`}`, options);
    this.detail = message;
  }
}

/** `file:line:col: key: message`, and the suggestion on a line of its own below. */
export function formatProblem(problem: WorkflowProblem): string {
  const where = `${problem.file}:${problem.line}:${problem.column}`;
  const line = problem.key === "" ? `${where}: ${problem.message}` : `${where}: ${problem.key}: ${problem.message}`;
  return problem.suggestion === undefined ? line : `${line}\n  suggestion: ${problem.suggestion}`;
}

/** Every problem found in one workflow file: parsing goes on after the first so a user fixes them in one pass. */
export class WorkflowValidationError extends WorkflowError {
  override name = "WorkflowValidationError";

  constructor(
    readonly file: string,
    readonly problems: readonly WorkflowProblem[],
  ) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    super(
      "invalid_workflow",
      `workflow ${file} cannot run on Solstice CI (${count}):\n${problems.map(formatProblem).join("\n")}`,
    );
  }
}
