import {
  type ContextValues,
  ExpressionError,
  evaluateParsed,
  findExpressions,
  type ParsedExpression,
  parseExpression,
  STATUS_FUNCTIONS,
  valueToText,
} from "./expression-engine.ts";
import type { Env } from "./workflow-plan.ts";

export interface ExpressionIssue {
  /** Offset of the `${{` in the interpolated text. */
  offset: number;
  /** The expression as written, `${{` to `}}`. */
  expression: string;
  message: string;
  /** What to do about it, when we can say. */
  suggestion?: string | undefined;
}

/** Contexts whose values only exist while the job runs: expressions using them are left for the executor. */
const RUNTIME_CONTEXTS = ["steps", "job", "jobs", "runner"];
/** github properties only the runner knows: where the job runs in the guest, and per step. */
const RUNTIME_GITHUB_PROPERTIES = ["workspace", "action", "event_path", "env", "path", "output", "step_summary"].map(
  (p) => `github.${p}`,
);
const RUNTIME_FUNCTIONS = ["hashfiles", ...STATUS_FUNCTIONS];

/** What the planner knows: the caller's contexts and the environment declared so far. */
export interface PlanScope {
  readonly contexts: ContextValues;
  readonly env: Env;
  /**
   * When the executor can evaluate what the planner cannot: "job" for text evaluated as the job
   * starts (workflow and job env), where secrets can be read; "step" for text evaluated just before
   * its step (run, name, working-directory, the step's env), where the env context is also what
   * earlier steps made of it through GITHUB_ENV. Without it, only the planner evaluates the text.
   */
  readonly runtime?: "job" | "step";
}

export interface Interpolation {
  /** The substituted text, or the text as written when `deferred`. */
  text: string;
  issues: ExpressionIssue[];
  /**
   * Some expression needs values that exist only while the job runs (steps, job, runner, hashFiles):
   * the whole text is kept as written for the executor, so substituted values are never re-read as
   * expressions.
   */
  deferred: boolean;
}

function envContext(env: Env): Record<string, string> {
  const plain: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (typeof value === "string") plain[name] = value;
  return plain;
}

function isDeferredValue(value: Env[string]): boolean {
  return typeof value === "string" && findExpressions(value).length > 0;
}

/** Why `parsed` cannot be evaluated now, or "defer" when the executor will evaluate it. */
function planProblem(parsed: ParsedExpression, scope: PlanScope, secretRule: string): string | "defer" | undefined {
  const { contexts, functions, properties } = parsed.refs;
  if (contexts.has("secrets")) return scope.runtime ? "defer" : `secrets cannot be used here: ${secretRule}`;
  // An earlier step may have set any variable through GITHUB_ENV.
  if (contexts.has("env") && scope.runtime === "step") return "defer";
  if (contexts.has("env")) {
    for (const [name, value] of Object.entries(scope.env)) {
      const mentioned = properties.has(`env.${name.toLowerCase()}`);
      if (typeof value === "object" && mentioned) {
        return `env.${name} holds the secret ${value.fromSecret}, which is only read in a step's run, name, working-directory and env`;
      }
    }
    if (Object.values(scope.env).some(isDeferredValue)) return "defer";
  }
  const runtime =
    RUNTIME_CONTEXTS.some((c) => contexts.has(c) && !(c === "runner" && scope.contexts.runner)) ||
    RUNTIME_GITHUB_PROPERTIES.some((p) => properties.has(p));
  // A forge sends the outputs of the jobs this one needs; a local run knows them only when the job starts.
  if (contexts.has("needs") && scope.contexts.needs === undefined) return "defer";
  if (runtime || RUNTIME_FUNCTIONS.some((f) => functions.has(f))) return "defer";
  return undefined;
}

/**
 * Replaces every `${{ … }}` in `text` with its value when the workflow is planned. An expression that
 * needs run-time values defers the whole text to the executor; a secret is an issue whose message ends
 * with `secretRule` (where secrets may go instead), because substituting it would put it in plain text.
 */
export function interpolate(text: string, scope: PlanScope, secretRule: string): Interpolation {
  const issues: ExpressionIssue[] = [];
  // Built on the first evaluation: most texts hold no expression.
  let contexts: ContextValues | undefined;
  let out = "";
  let last = 0;
  let deferred = false;
  for (const span of findExpressions(text)) {
    const expression = text.slice(span.start, span.end);
    out += text.slice(last, span.start);
    last = span.end;
    const issue = (message: string, suggestion?: string) =>
      issues.push({ offset: span.start, expression, message, suggestion });
    if (span.inner === undefined) {
      issue(`expression \`${expression}\` is not closed with }}`);
      continue;
    }
    try {
      const parsed = parseExpression(span.inner.trim());
      const problem = planProblem(parsed, scope, secretRule);
      if (problem === "defer") deferred = true;
      else if (problem !== undefined) issue(`expression \`${expression}\`: ${problem}`);
      else {
        contexts ??= { ...scope.contexts, env: envContext(scope.env) };
        out += valueToText(evaluateParsed(parsed, contexts));
      }
    } catch (error) {
      if (!(error instanceof ExpressionError)) throw error;
      issue(error.detail, error.hint);
    }
  }
  return { text: deferred ? text : out + text.slice(last), issues, deferred };
}

const WHOLE_SECRET = /^secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*\])$/i;

/** The secret's name when `text` is exactly one `${{ secrets.NAME }}` (surrounding spaces allowed). */
export function wholeSecretReference(text: string): string | undefined {
  const trimmed = text.trim();
  const spans = findExpressions(trimmed);
  const only = spans[0];
  if (spans.length !== 1 || only === undefined || only.start !== 0 || only.end !== trimmed.length) return undefined;
  if (only.inner === undefined) return undefined;
  const match = WHOLE_SECRET.exec(only.inner.trim());
  return match === null ? undefined : (match[1] ?? match[2]);
}

/** The secrets the `${{ }}` expressions of `text` read: by name, or `all` when one reads them by a computed key. */
export function secretsReadBy(text: string): { names: Set<string>; all: boolean } {
  const read = { names: new Set<string>(), all: false };
  for (const span of findExpressions(text)) {
    if (span.inner === undefined) continue;
    let refs: ParsedExpression["refs"];
    try {
      refs = parseExpression(span.inner.trim()).refs;
    } catch {
      continue; // reported when the text was planned
    }
    if (refs.wholeContexts.has("secrets")) read.all = true;
    for (const property of refs.properties) {
      if (property.startsWith("secrets.")) read.names.add(property.slice("secrets.".length));
    }
  }
  return read;
}
