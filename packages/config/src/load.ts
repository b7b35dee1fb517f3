import type { z } from "zod";

/** A configuration that does not validate; the message lists every bad setting by its variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "invalid_config";
  constructor(
    readonly problems: string[],
    readonly service: string,
  ) {
    super(`${service}: invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

/**
 * Reads `SOLSTICE_*` variables into the shape a schema expects: `SOLSTICE_MAX_VMS` → `maxVms`;
 * `overrides` (from command-line flags) win over the environment.
 */
export function loadConfig<S extends z.ZodObject>(
  service: string,
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
  overrides: Record<string, unknown> = {},
): z.output<S> {
  const known = new Map(Object.keys(schema.shape).map((key) => [envNameOf(key), key]));
  const input: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("SOLSTICE_") || value === undefined) continue;
    const key = known.get(name);
    if (key) input[key] = value;
  }
  Object.assign(input, Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)));
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const key = String(issue.path[0] ?? "");
        return `${key ? envNameOf(key) : "(config)"}: ${issue.message}`;
      }),
      service,
    );
  }
  return parsed.data;
}

/** `maxVms` → `SOLSTICE_MAX_VMS`. */
export function envNameOf(key: string): string {
  return `SOLSTICE_${key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()}`;
}
