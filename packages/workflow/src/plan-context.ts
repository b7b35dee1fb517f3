import type { ExpressionContext, ExpressionValue } from "./expressions.ts";
import type { Env, PlanContexts } from "./workflow-plan.ts";

function property(object: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(object, name)) return object[name];
  // Property access in Actions expressions is case-insensitive.
  const lower = name.toLowerCase();
  const key = Object.keys(object).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : object[key];
}

function lookup(root: Record<string, unknown>, reference: string, path: readonly string[]): ExpressionValue {
  let value: unknown = root;
  for (const name of path) {
    if (value === null || value === undefined) break;
    if (typeof value !== "object" || Array.isArray(value)) {
      return { kind: "unavailable", reason: `${reference} goes past a value that has no properties` };
    }
    value = property(value as Record<string, unknown>, name);
  }
  // A missing property is empty, as in Actions.
  if (value === null || value === undefined) return { kind: "value", value: "" };
  if (typeof value === "string") return { kind: "value", value };
  if (typeof value === "number" || typeof value === "boolean") return { kind: "value", value: String(value) };
  return { kind: "unavailable", reason: `${reference} is an object, not a value that can be substituted` };
}

/** Resolves references from the caller's contexts and the environment declared so far. */
export class PlanExpressionContext implements ExpressionContext {
  constructor(
    private readonly contexts: PlanContexts,
    private readonly env: Env,
  ) {}

  resolve(context: string, path: readonly string[]): ExpressionValue {
    const reference = [context, ...path].join(".");
    if (context === "secrets") {
      const [name] = path;
      if (name === undefined || path.length > 1) {
        return { kind: "unavailable", reason: `${reference}: a secret has no properties` };
      }
      return { kind: "secret", name };
    }
    if (context === "env") {
      const [name] = path;
      if (name === undefined || path.length > 1) {
        return { kind: "unavailable", reason: `${reference}: an environment variable has no properties` };
      }
      const value = this.env[name];
      if (typeof value === "object") {
        return {
          kind: "unavailable",
          reason: `env.${name} holds the secret ${value.fromSecret}; read it as $${name} in the script instead`,
        };
      }
      return { kind: "value", value: value ?? "" };
    }
    const root = this.contexts[context as keyof PlanContexts];
    if (root === undefined) {
      return { kind: "unavailable", reason: `the ${context} context was not provided to the planner` };
    }
    return lookup(root, reference, path);
  }
}
