import { isRecord, list, prop, str } from "../client/wire-json.ts";

/**
 * A TemplateToken of a job message (step inputs, env, defaults, outputs): a bare JSON scalar is
 * a literal; otherwise `{"type": T, …}` with T 0 string (`lit`), 1 sequence (`seq`), 2 mapping
 * (`map`), 3 expression (`expr`, without `${{ }}`), 4 insert (`directive`), 5 boolean (`bool`),
 * 6 number (`num`), 7 null. An object without `type` is a string.
 */
export type TokenValue =
  | { kind: "literal"; text: string }
  | { kind: "expression"; expression: string }
  | { kind: "mapping"; entries: [string, unknown][] }
  | { kind: "sequence"; items: unknown[] }
  | { kind: "other"; what: string };

export function readToken(token: unknown): TokenValue {
  if (token === null || token === undefined) return { kind: "literal", text: "" };
  if (typeof token === "string") return { kind: "literal", text: token };
  if (typeof token === "number" || typeof token === "boolean") return { kind: "literal", text: String(token) };
  if (!isRecord(token)) return UNREADABLE;
  const type = prop(token, "type") ?? 0;
  switch (type) {
    case 0:
      return literal(prop(token, "lit") ?? "");
    case 1:
      return { kind: "sequence", items: list(prop(token, "seq")) };
    case 2:
      return {
        kind: "mapping",
        entries: list(prop(token, "map")).map((pair) => {
          const key = readToken(prop(pair, "key"));
          return [key.kind === "literal" ? key.text : "", prop(pair, "value")];
        }),
      };
    case 3: {
      const expression = str(prop(token, "expr") ?? "");
      return expression === undefined ? UNREADABLE : { kind: "expression", expression };
    }
    case 4:
      return { kind: "other", what: `\${{ ${str(prop(token, "directive")) ?? "insert"} }}` };
    case 5:
      return { kind: "literal", text: String(prop(token, "bool") === true) };
    case 6:
      return literal(prop(token, "num") ?? 0);
    case 7:
      return { kind: "literal", text: "" };
    default:
      return { kind: "other", what: `a token of type ${str(type) ?? "unknown"}` };
  }
}

const UNREADABLE: TokenValue = { kind: "other", what: "an unreadable value" };

/** A scalar as a literal; an object or a list where the message must have a scalar is unreadable. */
function literal(value: unknown): TokenValue {
  const text = str(value);
  return text === undefined ? UNREADABLE : { kind: "literal", text };
}

/** The entries of a mapping token; anything else is no entries. */
export function mappingEntries(token: unknown): [string, unknown][] {
  const value = readToken(token);
  return value.kind === "mapping" ? value.entries : [];
}

const WHOLE_SECRET = /^\s*secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_-]*)|\[\s*'([^']+)'\s*\])\s*$/;

/** `secrets.NAME` (or `secrets['NAME']`) as a whole expression: the secret's name. */
export function wholeSecret(expression: string): string | undefined {
  const match = WHOLE_SECRET.exec(expression);
  return match ? (match[1] ?? match[2]) : undefined;
}

/** Whether an expression reads the secrets context anywhere. */
export function readsSecrets(expression: string): boolean {
  return /(^|[^A-Za-z0-9_.])secrets\s*[.[]/.test(expression);
}
