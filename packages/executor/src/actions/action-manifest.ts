import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse } from "yaml";
import { z } from "zod";

// action.yml as GitHub documents its metadata syntax. Values that YAML reads as numbers or
// booleans (`default: 20`, `required: true`) are text or flags as the runner reads them.
const text = z.union([z.string(), z.number(), z.boolean()]).transform(String);
const flag = z.union([z.boolean(), z.string()]).transform((v) => v === true || String(v).toLowerCase() === "true");

const input = z
  .object({
    description: text.optional(),
    required: flag.optional(),
    default: text.optional(),
    deprecationMessage: text.optional(),
  })
  .passthrough()
  .nullable()
  .transform((v) => v ?? {});

const compositeStep = z
  .object({
    id: z.string().optional(),
    name: text.optional(),
    if: text.optional(),
    run: text.optional(),
    shell: z.string().optional(),
    uses: z.string().optional(),
    with: z
      .record(
        z.string(),
        text.nullable().transform((v) => v ?? ""),
      )
      .optional(),
    env: z
      .record(
        z.string(),
        text.nullable().transform((v) => v ?? ""),
      )
      .optional(),
    "working-directory": z.string().optional(),
    "continue-on-error": z.union([z.boolean(), z.string()]).optional(),
  })
  .passthrough();

const nodeRuns = z.object({
  using: z.enum(["node12", "node16", "node20", "node24"]),
  main: z.string(),
  pre: z.string().optional(),
  "pre-if": z.string().optional(),
  post: z.string().optional(),
  "post-if": z.string().optional(),
});
const compositeRuns = z.object({ using: z.literal("composite"), steps: z.array(compositeStep) });
const dockerRuns = z.object({ using: z.literal("docker") }).passthrough();

const manifest = z.object({
  name: text.optional(),
  inputs: z.record(z.string(), input).nullable().optional(),
  outputs: z
    .record(
      z.string(),
      z
        .object({ description: text.optional(), value: text.optional() })
        .nullable()
        .transform((v) => v ?? {}),
    )
    .nullable()
    .optional(),
  runs: z.discriminatedUnion("using", [nodeRuns, compositeRuns, dockerRuns]),
});

export type ActionManifest = z.output<typeof manifest>;
export type CompositeStep = z.output<typeof compositeStep>;
export type NodeRuns = z.output<typeof nodeRuns>;

export class ActionManifestError extends Error {
  override readonly name = "ActionManifestError";
  readonly code = "action_manifest";
}

/** Reads `action.yml` (or `action.yaml`) of an action's folder on the host. */
export async function readActionManifest(dir: string, label: string): Promise<ActionManifest> {
  let raw: string | undefined;
  for (const file of ["action.yml", "action.yaml"]) {
    raw = await readFile(path.join(dir, file), "utf8").catch(() => undefined);
    if (raw !== undefined) break;
  }
  if (raw === undefined) {
    throw new ActionManifestError(`${label} has no action.yml or action.yaml (a Dockerfile-only action is not run)`);
  }
  let data: unknown;
  try {
    data = parse(raw);
  } catch (error) {
    throw new ActionManifestError(`${label}: action.yml is not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  const using = (data as { runs?: { using?: unknown } } | null)?.runs?.using;
  if (typeof using === "string" && !["node12", "node16", "node20", "node24", "composite", "docker"].includes(using)) {
    throw new ActionManifestError(
      `${label}: runs.using \`${using}\` is not supported; Solstice runs node20, node24 (node12 and node16 on node20) and composite actions`,
    );
  }
  const parsed = manifest.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ActionManifestError(
      `${label}: action.yml ${issue?.path.join(".") || ""}: ${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}
