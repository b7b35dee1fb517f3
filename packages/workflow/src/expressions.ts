/** What a context reference stands for when a workflow is planned. */
export type ExpressionValue =
  | { kind: "value"; value: string }
  /** A secret: never substituted into text; only an `env:` value may carry it, as a reference. */
  | { kind: "secret"; name: string }
  | { kind: "unavailable"; reason: string };

/** Resolves plain context references such as `env.X` or `github.sha`. */
export interface ExpressionContext {
  /** `context` is lower-case (contexts are case-insensitive); `path` has at least one property. */
  resolve(context: string, path: readonly string[]): ExpressionValue;
}

export interface ExpressionIssue {
  /** Offset of the `${{` in the interpolated text. */
  offset: number;
  /** The expression as written, `${{` to `}}`. */
  expression: string;
  message: string;
}

export const SUPPORTED_CONTEXTS: readonly string[] = ["env", "github", "runner", "secrets", "matrix", "inputs", "vars"];

const UNSUPPORTED_HINT = "(Solstice supports plain context references like env.X, github.sha)";

interface Span {
  start: number;
  end: number;
  /** Text between `${{` and `}}`; undefined when the expression is not closed. */
  inner: string | undefined;
}

/** Finds every `${{ … }}` in `text`; `}}` inside a '…' string literal does not close an expression. */
function scan(text: string): Span[] {
  const spans: Span[] = [];
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

type Parsed = { kind: "literal"; value: string } | { kind: "reference"; context: string; path: string[] };

const LITERAL = /^'((?:[^']|'')*)'$/;
const REFERENCE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)+$/;

function parse(inner: string): Parsed | undefined {
  const body = inner.trim();
  const literal = LITERAL.exec(body);
  if (literal) return { kind: "literal", value: (literal[1] ?? "").replaceAll("''", "'") };
  if (!REFERENCE.test(body)) return undefined;
  const [context = "", ...path] = body.split(".");
  const lower = context.toLowerCase();
  if (!SUPPORTED_CONTEXTS.includes(lower)) return undefined;
  return { kind: "reference", context: lower, path };
}

function unsupported(expression: string): string {
  return `expression \`${expression}\` is not supported yet ${UNSUPPORTED_HINT}`;
}

export interface Interpolation {
  text: string;
  issues: ExpressionIssue[];
}

/**
 * Replaces every `${{ … }}` in `text` with its value. A secret reference is an issue whose message ends
 * with `secretRule` (where secrets may go instead), because substituting it would put it in plain text.
 */
export function interpolate(text: string, context: ExpressionContext, secretRule: string): Interpolation {
  const issues: ExpressionIssue[] = [];
  let out = "";
  let last = 0;
  for (const span of scan(text)) {
    const expression = text.slice(span.start, span.end);
    out += text.slice(last, span.start);
    last = span.end;
    const issue = (message: string) => issues.push({ offset: span.start, expression, message });
    if (span.inner === undefined) {
      issue(`expression \`${expression}\` is not closed with }}`);
      continue;
    }
    const parsed = parse(span.inner);
    if (parsed === undefined) {
      issue(unsupported(expression));
      continue;
    }
    if (parsed.kind === "literal") {
      out += parsed.value;
      continue;
    }
    const value = context.resolve(parsed.context, parsed.path);
    if (value.kind === "value") out += value.value;
    else if (value.kind === "secret") issue(`secret \`${expression}\` cannot be used here: ${secretRule}`);
    else issue(`expression \`${expression}\` has no value when the workflow is planned: ${value.reason}`);
  }
  return { text: out + text.slice(last), issues };
}

/** The secret's name when `text` is exactly one `${{ secrets.NAME }}` (surrounding spaces allowed). */
export function wholeSecretReference(text: string): string | undefined {
  const trimmed = text.trim();
  const spans = scan(trimmed);
  const only = spans[0];
  if (spans.length !== 1 || only === undefined || only.start !== 0 || only.end !== trimmed.length) return undefined;
  if (only.inner === undefined) return undefined;
  const parsed = parse(only.inner);
  if (parsed?.kind !== "reference" || parsed.context !== "secrets" || parsed.path.length !== 1) return undefined;
  return parsed.path[0];
}
