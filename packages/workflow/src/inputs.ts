import { WorkflowError } from "./workflow-errors.ts";

interface InputDefinition {
  type?: unknown;
  required?: unknown;
  default?: unknown;
  options?: unknown;
}

/** The `inputs:` a workflow declares under `on.workflow_dispatch` (or `on.workflow_call`). */
function declaredInputs(on: unknown): Record<string, InputDefinition> | undefined {
  if (typeof on !== "object" || on === null || Array.isArray(on)) return undefined;
  for (const trigger of ["workflow_dispatch", "workflow_call"]) {
    const inputs = (on as Record<string, { inputs?: unknown } | null>)[trigger]?.inputs;
    if (typeof inputs === "object" && inputs !== null) return inputs as Record<string, InputDefinition>;
  }
  return undefined;
}

/**
 * The `inputs` context of a manual run: the values given (as `NAME=VALUE` text), checked against
 * the inputs the workflow declares, with their defaults, and typed as Actions types them
 * (a boolean input is true/false, a number input a number). A workflow that declares no inputs
 * takes any, as strings.
 */
export function resolveInputs(on: unknown, given: Readonly<Record<string, string>>): Record<string, unknown> {
  const declared = declaredInputs(on);
  if (declared === undefined) return { ...given };
  const names = Object.keys(declared);
  const problems: string[] = [];
  for (const name of Object.keys(given)) {
    if (!(name in declared))
      problems.push(`input \`${name}\` is not declared; the workflow declares: ${names.join(", ")}`);
  }
  const inputs: Record<string, unknown> = {};
  for (const [name, definition] of Object.entries(declared)) {
    const text = given[name] ?? (definition?.default === undefined ? undefined : String(definition.default));
    if (text === undefined) {
      if (definition?.required === true) problems.push(`input \`${name}\` is required: pass --input ${name}=VALUE`);
      continue;
    }
    const typed = typedInput(name, text, definition ?? {});
    if (typeof typed === "object" && typed !== null) problems.push(typed.problem);
    else inputs[name] = typed;
  }
  if (problems.length > 0) {
    throw new WorkflowError("invalid_input", problems.join("; "), "see the workflow's on.workflow_dispatch.inputs");
  }
  return inputs;
}

function typedInput(
  name: string,
  text: string,
  definition: InputDefinition,
): string | number | boolean | { problem: string } {
  switch (definition.type) {
    case "boolean":
      if (text === "true" || text === "false") return text === "true";
      return { problem: `input \`${name}\` is a boolean: give true or false, not \`${text}\`` };
    case "number": {
      const value = Number(text);
      if (text.trim() !== "" && Number.isFinite(value)) return value;
      return { problem: `input \`${name}\` is a number, not \`${text}\`` };
    }
    case "choice": {
      const options = Array.isArray(definition.options) ? definition.options.map(String) : [];
      if (options.includes(text)) return text;
      return { problem: `input \`${name}\` must be one of ${options.join(", ")}, not \`${text}\`` };
    }
    default:
      return text;
  }
}
