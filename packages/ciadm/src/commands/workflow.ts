import { readFile } from "node:fs/promises";
import {
  CONTEXT_NAMES,
  type ContextValues,
  conditionExpression,
  ExpressionError,
  evaluateCondition,
  evaluateExpression,
  findExpressions,
  formatProblem,
  interpolateText,
  type JobStatus,
  loadWorkflowFile,
  nearestName,
  parseExpression,
  STATUS_FUNCTIONS,
  WorkflowError,
  type WorkflowProblem,
  WorkflowValidationError,
} from "@solstice/workflow";
import type { Command } from "commander";
import type { Terminal } from "../terminal.ts";

/** `ciadm workflow check | eval`: validate workflows and try expressions without running anything. */
export function registerWorkflow(program: Command, term: Terminal): void {
  const workflow = program.command("workflow").description("check workflow files and try expressions, offline");

  workflow
    .command("check")
    .description("validate workflow files without running them; exits non-zero if any has a problem")
    .argument("<files...>", "workflow files, e.g. .forgejo/workflows/*.yml")
    .option("--json", "print the problems as a JSON array on stdout", false)
    .action(async (files: string[], opts: { json: boolean }) => {
      process.exitCode = await checkWorkflows(files, opts.json, term);
    });

  workflow
    .command("eval")
    .description("evaluate one expression against the given contexts and print its value as JSON")
    .argument("<expression>", `e.g. "github.ref == 'refs/heads/main'" (with or without \${{ }})`)
    .option("--context <file>", 'a JSON object of contexts, e.g. {"github": {...}, "env": {...}}')
    .option("--condition", "evaluate it as an if: (implicit success() &&; job.status sets the status)", false)
    .action(async (expression: string, opts: { context?: string; condition: boolean }) => {
      process.exitCode = await evalExpression(expression, opts, term);
    });
}

/** Row of `check --json`: one problem, `suggestion` null when there is none. */
interface ProblemRow {
  file: string;
  line: number;
  column: number;
  key: string;
  message: string;
  suggestion: string | null;
}

async function checkWorkflows(files: readonly string[], json: boolean, term: Terminal): Promise<number> {
  const problems: WorkflowProblem[] = [];
  for (const file of files) {
    // In reading order, so a user fixes a file from the top.
    const found = [...(await problemsOf(file))].sort((a, b) => a.line - b.line || a.column - b.column);
    problems.push(...found);
  }
  if (json) {
    const rows: ProblemRow[] = problems.map((p) => ({
      file: p.file,
      line: p.line,
      column: p.column,
      key: p.key,
      message: p.message,
      suggestion: p.suggestion ?? null,
    }));
    term.out(`${JSON.stringify(rows, null, 2)}\n`);
  } else {
    for (const problem of problems) term.out(`${formatProblem(problem)}\n`);
    const failed = new Set(problems.map((p) => p.file)).size;
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    term.out(
      problems.length === 0
        ? `${files.length === 1 ? "the workflow is" : `all ${files.length} workflows are`} valid\n`
        : `${count} in ${failed} of ${files.length} file${files.length === 1 ? "" : "s"}\n`,
    );
  }
  return problems.length === 0 ? 0 : 1;
}

/** Every problem of one file; a file that cannot be read is one problem at its start. */
async function problemsOf(file: string): Promise<readonly WorkflowProblem[]> {
  try {
    await loadWorkflowFile(file);
    return [];
  } catch (error) {
    if (error instanceof WorkflowValidationError) return error.problems;
    if (!(error instanceof WorkflowError)) throw error;
    return [
      {
        file,
        line: 1,
        column: 1,
        key: "",
        message: error.detail,
        ...(error.hint === undefined ? {} : { suggestion: error.hint }),
      },
    ];
  }
}

/** A mistake in how `eval` was called (exit code 2), as opposed to an invalid expression (1). */
class EvalUsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

async function evalExpression(
  text: string,
  opts: { context?: string; condition: boolean },
  term: Terminal,
): Promise<number> {
  try {
    const contexts = opts.context === undefined ? {} : await readContexts(opts.context);
    const value = opts.condition ? decideCondition(text, contexts, term) : evaluateText(text, contexts);
    term.out(`${toJsonText(value)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof ExpressionError) {
      term.err(`ciadm: ${error.detail}\n`);
      // Point at the column under the expression's line that has the problem, as a compiler does.
      const lines = error.expression.split("\n");
      const upTo = lines
        .slice(0, error.line)
        .map((line) => `  ${line}\n`)
        .join("");
      const after = lines
        .slice(error.line)
        .map((line) => `  ${line}\n`)
        .join("");
      term.err(`${upTo}  ${" ".repeat(Math.max(0, error.column - 1))}^\n${after}`);
      if (error.hint !== undefined) term.err(`hint: ${error.hint}\n`);
      return 1;
    }
    if (error instanceof EvalUsageError) {
      term.err(`ciadm: ${error.message}\n`);
      if (error.hint !== undefined) term.err(`hint: ${error.hint}\n`);
      return 2;
    }
    throw error;
  }
}

/**
 * The value of `text`: one expression, bare or inside one `${{ }}`; text with `${{ }}` among other
 * characters is a template, whose value is the text with each expression substituted, as in `run:`.
 */
function evaluateText(text: string, contexts: ContextValues): unknown {
  const spans = findExpressions(text.trim());
  const only = spans[0];
  const whole = spans.length === 1 && only?.start === 0 && only.end === text.trim().length;
  if (spans.length > 0 && !whole) return interpolateText(text, contexts);
  const expression = conditionExpression(text);
  const statusCall = STATUS_FUNCTIONS.find((f) => parseExpression(expression).refs.functions.has(f));
  if (statusCall !== undefined) {
    throw new EvalUsageError(
      `${statusCall}() only has a value in an if:`,
      "pass --condition, and the job's status as job.status in the --context file",
    );
  }
  return evaluateExpression(expression, contexts);
}

function decideCondition(text: string, contexts: ContextValues, term: Terminal): boolean {
  const expression = conditionExpression(text);
  const calls = parseExpression(expression === "" ? "true" : expression).refs.functions;
  if (!STATUS_FUNCTIONS.some((f) => calls.has(f))) {
    term.err(`note: evaluated as success() && (${expression === "" ? "true" : expression}), as an if: is\n`);
  }
  return evaluateCondition(text, contexts, jobStatusOf(contexts));
}

const JOB_STATUSES: Readonly<Record<string, JobStatus>> = {
  success: { jobFailed: false, cancelled: false },
  failure: { jobFailed: true, cancelled: false },
  cancelled: { jobFailed: false, cancelled: true },
};

/** The status functions' view of `job.status`; a job that has not failed when none is given. */
function jobStatusOf(contexts: ContextValues): JobStatus {
  const job = contexts.job;
  const status = typeof job === "object" && job !== null ? (job as Record<string, unknown>).status : undefined;
  if (status === undefined) return JOB_STATUSES.success as JobStatus;
  const known = typeof status === "string" ? JOB_STATUSES[status.toLowerCase()] : undefined;
  if (known === undefined) {
    throw new EvalUsageError(
      `job.status is ${JSON.stringify(status)} in the context file`,
      `give one of: ${Object.keys(JOB_STATUSES).join(", ")}`,
    );
  }
  return known;
}

/** Reads the contexts file: a JSON object whose keys are context names (any case). */
async function readContexts(file: string): Promise<ContextValues> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new EvalUsageError(
      `cannot read the context file ${file}: ${(error as Error).message}`,
      'it is a JSON object such as {"github": {"ref": "refs/heads/main"}, "env": {"CI": "true"}}',
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new EvalUsageError(
      `the context file ${file} must hold a JSON object of contexts`,
      'e.g. {"github": {"ref": "refs/heads/main"}}',
    );
  }
  const contexts: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(parsed)) {
    const context = name.toLowerCase();
    if (!CONTEXT_NAMES.includes(context)) {
      const nearest = nearestName(name, CONTEXT_NAMES);
      throw new EvalUsageError(
        `the context file ${file} has \`${name}\`, which is no context`,
        `${nearest === undefined ? "" : `did you mean \`${nearest}\`? `}contexts are: ${CONTEXT_NAMES.join(", ")}`,
      );
    }
    contexts[context] = value;
  }
  return contexts;
}

/** JSON, except that a number the language can hold but JSON cannot (NaN, ±Infinity) is written as such. */
function toJsonText(value: unknown): string {
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return JSON.stringify(value, null, 2);
}
