import {
  ExpressionError as ActionsExpressionError,
  data,
  Evaluator,
  type Expr,
  Lexer,
  Parser,
} from "@actions/expressions";
import {
  type Binary,
  type ContextAccess,
  type ExprVisitor,
  type FunctionCall,
  type Grouping,
  type IndexAccess,
  type Literal,
  type Logical,
  Star,
  type Unary,
} from "@actions/expressions/ast";
import type { FunctionDefinition } from "@actions/expressions/funcs/info";
import { nearestName } from "./nearest-name.ts";
import { NUMBER_TEXT_FUNCTIONS, numberToText } from "./number-text.ts";
import { WorkflowError } from "./workflow-errors.ts";

// GitHub's own lexer, parser and evaluator (@actions/expressions) do the language; this module adds
// what it lacks: the status functions and hashFiles, our typed errors, and the analysis the planner
// needs to decide whether an expression can be evaluated when the workflow is planned.

/** Every context an Actions expression may name. */
export const CONTEXT_NAMES: readonly string[] = [
  "github",
  "env",
  "vars",
  "secrets",
  "job",
  "jobs",
  "steps",
  "runner",
  "matrix",
  "strategy",
  "needs",
  "inputs",
];

export const STATUS_FUNCTIONS: readonly string[] = ["success", "always", "cancelled", "failure"];

/** Whether earlier steps failed or the job was cancelled, for the status functions. */
export interface JobStatus {
  /** A previous step failed (and did not have continue-on-error). */
  jobFailed: boolean;
  cancelled: boolean;
  /** For a job's if: a job it needs was skipped, so success() is false though nothing failed. */
  neededSkipped?: boolean;
}

/** Plain JSON values per context name (lower-case); a context left out evaluates to null. */
export type ContextValues = Readonly<Record<string, unknown>>;

export interface EvaluateOptions {
  /** Needed by the status functions; without it they are an error. */
  status?: JobStatus;
  /**
   * Computes hashFiles(patterns) — in the guest, by the executor, before evaluating. Without it,
   * hashFiles is an error.
   */
  hashFiles?: (patterns: readonly string[]) => string;
}

/** An expression that does not parse or cannot be evaluated. */
export class ExpressionError extends WorkflowError {
  override name = "ExpressionError";

  constructor(
    /** The expression as written, without `${{ }}`. */
    readonly expression: string,
    /** 1-based column, within `line`, where the problem is. */
    readonly column: number,
    readonly reason: string,
    hint?: string,
    /** 1-based line of the expression where the problem is (an expression may span lines). */
    readonly line = 1,
  ) {
    const where = expression.includes("\n") ? `line ${line}, column ${column}` : `column ${column}`;
    super("invalid_expression", `expression \`${expression}\`, ${where}: ${reason}`, hint);
  }
}

/** The 1-based line and column of a 0-based offset in `text`. */
function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf("\n") + 1;
  return { line: before.split("\n").length, column: offset - lineStart + 1 };
}

/** What an expression refers to, found by walking its syntax tree. */
export interface ExpressionRefs {
  /** Lower-case context names used. */
  contexts: ReadonlySet<string>;
  /** Lower-case function names called. */
  functions: ReadonlySet<string>;
  /** `context.property` pairs (lower-case) where the property is a literal name. */
  properties: ReadonlySet<string>;
  /** Contexts (lower-case) read as a whole or with a computed key (`toJSON(secrets)`, `secrets[x]`). */
  wholeContexts: ReadonlySet<string>;
}

export interface ParsedExpression {
  readonly text: string;
  readonly refs: ExpressionRefs;
  /** undefined for an empty expression. */
  readonly ast: Expr | undefined;
}

const EXTENSION_FUNCTIONS = [
  ...STATUS_FUNCTIONS.map((name) => ({ name, minArgs: 0, maxArgs: 0 })),
  { name: "hashFiles", minArgs: 1, maxArgs: 255 },
];
/** Functions we provide or replace (those that write numbers into text). */
const OUR_FUNCTION_NAMES = [...EXTENSION_FUNCTIONS.map((f) => f.name.toLowerCase()), ...NUMBER_TEXT_FUNCTIONS.keys()];

/** Every function an expression may call, with the arguments it takes. */
const FUNCTION_ARGUMENTS: Readonly<Record<string, string>> = {
  contains: "2 arguments: contains(search, item)",
  startsWith: "2 arguments: startsWith(searchString, searchValue)",
  endsWith: "2 arguments: endsWith(searchString, searchValue)",
  format: "a format string and the values for its {0}, {1}…: format('{0}-{1}', a, b)",
  join: "1 or 2 arguments: join(array, separator), the separator ',' when left out",
  toJSON: "1 argument: toJSON(value)",
  fromJSON: "1 argument: fromJSON(text)",
  hashFiles: "1 or more path patterns: hashFiles('**/package-lock.json')",
  case: "an odd number of arguments: case(condition, value, …, default)",
  success: "no arguments",
  always: "no arguments",
  cancelled: "no arguments",
  failure: "no arguments",
};
const FUNCTION_NAMES = Object.keys(FUNCTION_ARGUMENTS);

const HINT_SYNTAX =
  "see https://docs.github.com/actions/learn-github-actions/expressions; strings use single quotes, e.g. 'main'";

function reasonOf(message: string): string {
  return message
    .replace(/^Unrecognized named-value/, "unknown context")
    .replace(/^Unrecognized function/, "unknown function");
}

/** What to do about a parse error, from the parser's message. */
function parseErrorHint(message: string): string {
  if (/named-value/.test(message)) {
    return nameHint(message, CONTEXT_NAMES, `contexts are: ${CONTEXT_NAMES.join(", ")}`);
  }
  if (/^Unrecognized function/.test(message)) {
    return nameHint(message, FUNCTION_NAMES, `functions are: ${FUNCTION_NAMES.join(", ")}`);
  }
  const count = /parameters supplied: '([^']*)'/.exec(message)?.[1];
  const name = FUNCTION_NAMES.find((f) => f.toLowerCase() === count?.toLowerCase());
  if (name !== undefined) return `${name}() takes ${FUNCTION_ARGUMENTS[name]}`;
  // The lexer's symbol for a string never closed starts with the string's own quote.
  if (/^Unexpected symbol: ''/.test(message))
    return "a string is not closed: end it with ' (write '' for a quote in it)";
  return HINT_SYNTAX;
}

/** What to do about an evaluation error, when its message says enough. */
function evaluationHint(message: string): string | undefined {
  if (/format string/.test(message)) {
    return "format() writes {N} for argument N (counting from 0), and {{ and }} for literal braces";
  }
  if (/JSON/i.test(message))
    return "fromJSON() reads JSON text, e.g. fromJSON('{\"a\": [1, 2]}') or fromJSON(steps.x.outputs.json)";
  return undefined;
}

/** "did you mean …?" before `list` when the name quoted in `message` is a likely typo of one in `names`. */
function nameHint(message: string, names: readonly string[], list: string): string {
  const quoted = /'([^']*)'/.exec(message)?.[1];
  const nearest = quoted === undefined ? undefined : nearestName(quoted, names);
  return nearest === undefined ? list : `did you mean \`${nearest}\`? ${list}`;
}

// Workflows repeat the same expressions (an `if:` on every step, `github.sha` in many scripts, a
// matrix plans each job once per combination): each distinct text is parsed once. Parsed
// expressions are immutable, so they are shared. Bounded by the characters held, as many as one
// workflow file may have (a syntax tree takes some tens of bytes per character at worst); when
// full, the cache starts over.
const PARSE_CACHE_MAX_CHARS = 1024 * 1024;
const parsedByText = new Map<string, ParsedExpression>();
let parsedChars = 0;

/** Parses an expression (the text between `${{` and `}}`, or a bare `if:`); throws ExpressionError. */
export function parseExpression(text: string): ParsedExpression {
  const cached = parsedByText.get(text);
  if (cached !== undefined) return cached;
  const parsed = parseUncached(text);
  if (parsedChars + text.length > PARSE_CACHE_MAX_CHARS) {
    parsedByText.clear();
    parsedChars = 0;
  }
  parsedByText.set(text, parsed);
  parsedChars += text.length;
  return parsed;
}

function parseUncached(text: string): ParsedExpression {
  let ast: Expr | undefined;
  try {
    const { tokens } = new Lexer(text).lex();
    ast = new Parser(tokens, [...CONTEXT_NAMES], EXTENSION_FUNCTIONS).parse();
  } catch (error) {
    // The lexer throws plain Errors, the parser its own; some positions are only in the message.
    const message = error instanceof Error ? error.message : String(error);
    // The lexer gives an offset in the whole text, the parser a 0-based line and column.
    const located = /Located at position (\d+)/.exec(message);
    const { line, column } = located
      ? lineAndColumn(text, Number(located[1]) - 1)
      : error instanceof ActionsExpressionError
        ? { line: error.pos.line + 1, column: error.pos.column + 1 }
        : { line: 1, column: 1 };
    const reason = reasonOf(message.replace(/\. Located at position.*$/s, ""));
    throw new ExpressionError(text, column, reason, parseErrorHint(message), line);
  }
  const refs = new RefCollector();
  ast?.accept(refs);
  return { text, ast, refs };
}

/** Walks a syntax tree, collecting the contexts, functions and literal properties it refers to. */
class RefCollector implements ExprVisitor<void>, ExpressionRefs {
  readonly contexts = new Set<string>();
  readonly functions = new Set<string>();
  readonly properties = new Set<string>();
  readonly wholeContexts = new Set<string>();

  visitLiteral(): void {}

  visitUnary(u: Unary): void {
    u.expr.accept(this);
  }

  visitBinary(b: Binary): void {
    b.left.accept(this);
    b.right.accept(this);
  }

  visitLogical(l: Logical): void {
    for (const arg of l.args) arg.accept(this);
  }

  visitGrouping(g: Grouping): void {
    g.group.accept(this);
  }

  visitContextAccess(c: ContextAccess): void {
    this.contexts.add(c.name.lexeme.toLowerCase());
    this.wholeContexts.add(c.name.lexeme.toLowerCase());
  }

  visitIndexAccess(ia: IndexAccess): void {
    const target = ia.expr as Partial<ContextAccess>;
    const index = ia.index as Partial<Literal>;
    if (target.name !== undefined && index.literal?.kind === data.Kind.String) {
      const context = target.name.lexeme.toLowerCase();
      this.properties.add(`${context}.${index.literal.coerceString().toLowerCase()}`);
      this.contexts.add(context);
      return;
    }
    ia.expr.accept(this);
    // A Star (`.*`) refers to nothing and cannot be visited.
    if (!(ia.index instanceof Star)) ia.index.accept(this);
  }

  visitFunctionCall(f: FunctionCall): void {
    this.functions.add(f.functionName.lexeme.toLowerCase());
    for (const arg of f.args) arg.accept(this);
  }
}

/** Converts plain JSON to the evaluator's values; what JSON cannot hold (undefined, functions) is null. */
function toData(value: unknown, depth = 0): data.ExpressionData {
  if (value === null || value === undefined) return new data.Null();
  if (typeof value === "string") return new data.StringData(value);
  if (typeof value === "number") return new data.NumberData(value);
  if (typeof value === "boolean") return new data.BooleanData(value);
  // Context documents come from JSON, so they are trees; the bound only guards against a cycle.
  if (depth > 64) return new data.Null();
  if (Array.isArray(value)) return new data.Array(...value.map((v) => toData(v, depth + 1)));
  if (typeof value === "object") {
    const dict = new data.Dictionary();
    for (const [key, v] of Object.entries(value)) dict.add(key, toData(v, depth + 1));
    return dict;
  }
  return new data.Null();
}

/**
 * Converts the evaluator's value to plain JSON, except that a number stays a number even when it is
 * NaN or ±Infinity (the language has them as literals, and writes them into text as such).
 */
function toPlain(value: data.ExpressionData): unknown {
  switch (value.kind) {
    case data.Kind.Null:
      return null;
    case data.Kind.String:
    case data.Kind.Number:
    case data.Kind.Boolean:
      return value.value;
    default:
      return JSON.parse(JSON.stringify(value, data.replacer)) as unknown;
  }
}

function functionsFor(expression: string, options: EvaluateOptions): Map<string, FunctionDefinition> {
  const status = (name: string, decide: (s: JobStatus) => boolean): FunctionDefinition => ({
    name,
    minArgs: 0,
    maxArgs: 0,
    call: () => {
      if (options.status === undefined) {
        throw new ExpressionError(
          expression,
          1,
          `${name}() is only available in if: conditions`,
          "use it in a step's or job's if:",
        );
      }
      return new data.BooleanData(decide(options.status));
    },
  });
  return new Map<string, FunctionDefinition>([
    ...NUMBER_TEXT_FUNCTIONS,
    ["success", status("success", (s) => !s.jobFailed && !s.cancelled && !s.neededSkipped)],
    ["failure", status("failure", (s) => s.jobFailed && !s.cancelled)],
    ["always", status("always", () => true)],
    ["cancelled", status("cancelled", (s) => s.cancelled)],
    [
      "hashfiles",
      {
        name: "hashFiles",
        minArgs: 1,
        maxArgs: 255,
        call: (...args) => {
          if (options.hashFiles === undefined) {
            throw new ExpressionError(expression, 1, "hashFiles() is computed in the guest, just before a step runs");
          }
          return new data.StringData(options.hashFiles(args.map((a) => a.coerceString())));
        },
      },
    ],
  ]);
}

/** Evaluates a parsed expression against plain JSON contexts; returns plain JSON. */
export function evaluateParsed(
  parsed: ParsedExpression,
  contexts: ContextValues,
  options: EvaluateOptions = {},
): unknown {
  if (parsed.ast === undefined) return null;
  const root = new data.Dictionary();
  // Only the contexts the expression names are converted: the evaluator reads no others.
  for (const name of CONTEXT_NAMES) {
    if (parsed.refs.contexts.has(name)) root.add(name, toData(contexts[name]));
  }
  // Most expressions call none of our functions: they skip building them.
  const ours = OUR_FUNCTION_NAMES.some((name) => parsed.refs.functions.has(name));
  try {
    return toPlain(new Evaluator(parsed.ast, root, ours ? functionsFor(parsed.text, options) : undefined).evaluate());
  } catch (error) {
    if (error instanceof ExpressionError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new ExpressionError(parsed.text, 1, message, evaluationHint(message));
  }
}

export function evaluateExpression(text: string, contexts: ContextValues, options: EvaluateOptions = {}): unknown {
  return evaluateParsed(parseExpression(text), contexts, options);
}

/** Truthiness as Actions defines it: false, 0, -0, NaN, '' and null are falsy. */
export function isTruthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === "") return false;
  if (typeof value === "number") return value !== 0 && !Number.isNaN(value);
  return true;
}

/** How a value is written into text: strings as is, null as '', numbers and booleans as Actions prints them, objects as JSON. */
export function valueToText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number") return numberToText(value);
  if (typeof value === "boolean") return toData(value).coerceString();
  return JSON.stringify(value, null, 2);
}

/** An `if:` as written: bare or inside one `${{ }}`; empty means success(). */
export function conditionExpression(text: string): string {
  const body = text.trim();
  const spans = findExpressions(body);
  const only = spans[0];
  if (spans.length === 1 && only?.inner !== undefined && only.start === 0 && only.end === body.length) {
    return only.inner.trim();
  }
  return body;
}

/**
 * Parses an `if:`, adding the implicit `success() &&` when it calls no status function, as Actions
 * does. Throws ExpressionError.
 */
export function parseCondition(text: string): ParsedExpression {
  const body = conditionExpression(text);
  if (body === "") return parseExpression("success()");
  const parsed = parseExpression(body);
  if (STATUS_FUNCTIONS.some((f) => parsed.refs.functions.has(f))) return parsed;
  const wrapped = parseExpression(`success() && (${body})`);
  return { ...wrapped, text: body };
}

/** Decides an `if:` just before a step or job runs. Throws ExpressionError. */
export function evaluateCondition(
  text: string,
  contexts: ContextValues,
  status: JobStatus,
  options: Omit<EvaluateOptions, "status"> = {},
): boolean {
  return isTruthy(evaluateParsed(parseCondition(text), contexts, { ...options, status }));
}

/** One `${{ … }}` in a text. */
export interface ExpressionSpan {
  start: number;
  end: number;
  /** Text between `${{` and `}}`; undefined when the expression is not closed. */
  inner: string | undefined;
}

/** Finds every `${{ … }}` in `text`; `}}` inside a '…' string literal does not close an expression. */
export function findExpressions(text: string): ExpressionSpan[] {
  const spans: ExpressionSpan[] = [];
  let from = 0;
  for (;;) {
    const start = text.indexOf("${{", from);
    if (start < 0) return spans;
    let inString = false;
    let end = -1;
    for (let i = start + 3; i < text.length; i++) {
      if (text[i] === "'") inString = !inString;
      else if (!inString && text[i] === "}" && text[i + 1] === "}") {
        end = i + 2;
        break;
      }
    }
    if (end < 0) {
      spans.push({ start, end: text.length, inner: undefined });
      return spans;
    }
    spans.push({ start, end, inner: text.slice(start + 3, end - 2) });
    from = end;
  }
}

/** Replaces every `${{ … }}` in `text` with its value. Throws ExpressionError on the first bad one. */
export function interpolateText(text: string, contexts: ContextValues, options: EvaluateOptions = {}): string {
  let out = "";
  let last = 0;
  for (const span of findExpressions(text)) {
    out += text.slice(last, span.start);
    last = span.end;
    if (span.inner === undefined) {
      throw new ExpressionError(text.slice(span.start), 1, "not closed with }}", "close it with }}");
    }
    out += valueToText(evaluateExpression(span.inner, contexts, options));
  }
  return out + text.slice(last);
}
