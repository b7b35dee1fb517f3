/** Where a workflow file is wrong, precise enough to jump to. Lines and columns count from 1. */
export interface WorkflowProblem {
  file: string;
  line: number;
  column: number;
  /** Dotted path of the offending key, e.g. `jobs.build.steps[2].uses`; empty for YAML syntax errors. */
  key: string;
  message: string;
}

export type WorkflowErrorCode =
  | "invalid_expression"
  | "invalid_workflow"
  | "unknown_job"
  | "unreadable_workflow"
  | "unsupported_condition";

export class WorkflowError extends Error {
  override name = "WorkflowError";

  constructor(
    readonly code: WorkflowErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(`[${code}] ${message}${hint === undefined ? "" : ` (hint: ${hint})`}`, options);
  }
}

export function formatProblem(problem: WorkflowProblem): string {
  const where = `${problem.file}:${problem.line}:${problem.column}`;
  return problem.key === "" ? `${where}: ${problem.message}` : `${where}: ${problem.key}: ${problem.message}`;
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
