import { readFile } from "node:fs/promises";
import path from "node:path";
import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
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

const stepText = z.record(
  z.string(),
  text.nullable().transform((v) => v ?? ""),
);

// GitHub's action.yml schema (actions/runner src/Runner.Worker/action_yaml.json) allows exactly
// these keys on a composite step: `run-step` and `uses-step`. Anything else (`timeout-minutes`,
// `shell` on a uses step, `with` on a run step) makes the runner refuse the manifest in "Set up
// job" with "Unexpected value '<key>'"; Solstice refuses it before the VM boots, saying where.
const RUN_STEP_KEYS = ["name", "id", "if", "run", "env", "continue-on-error", "working-directory", "shell"];
const USES_STEP_KEYS = ["name", "id", "if", "uses", "continue-on-error", "with", "env"];

const compositeStep = z
  .object({
    id: z.string().optional(),
    name: text.optional(),
    if: text.optional(),
    run: text.optional(),
    shell: z.string().optional(),
    uses: z.string().optional(),
    with: stepText.optional(),
    env: stepText.optional(),
    "working-directory": z.string().optional(),
    "continue-on-error": z.union([z.boolean(), z.string()]).optional(),
  })
  .passthrough()
  .superRefine((step, ctx) => {
    const kind = step.run !== undefined ? "run" : step.uses !== undefined ? "uses" : undefined;
    if (kind === undefined) {
      ctx.addIssue({ code: "custom", message: "a composite step needs run: (with shell:) or uses:" });
      return;
    }
    if (kind === "run" && step.uses !== undefined) {
      ctx.addIssue({ code: "custom", path: ["uses"], message: "a composite step has run: or uses:, not both" });
    }
    const allowed = kind === "run" ? RUN_STEP_KEYS : USES_STEP_KEYS;
    for (const key of Object.keys(step)) {
      if (allowed.includes(key)) continue;
      ctx.addIssue({
        code: "custom",
        path: [key],
        message:
          key === "timeout-minutes"
            ? "Unexpected value 'timeout-minutes': GitHub's action.yml schema has no timeout-minutes on a composite action's steps; set timeout-minutes on the workflow step that uses the action"
            : `Unexpected value '${key}': a ${kind} step of a composite action takes ${allowed.join(", ")} (GitHub's action.yml schema)`,
      });
    }
    if (kind === "run" && step.shell === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["shell"],
        message: "a run step of a composite action needs shell: (as on GitHub)",
      });
    }
  });

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
  const lines = new LineCounter();
  const document = parseDocument(raw, { lineCounter: lines });
  if (document.errors.length > 0) {
    throw new ActionManifestError(
      `${label}: action.yml is not valid YAML: ${document.errors[0]?.message.split("\n")[0]}`,
    );
  }
  const data: unknown = document.toJS();
  const using = (data as { runs?: { using?: unknown } } | null)?.runs?.using;
  if (typeof using === "string" && !["node12", "node16", "node20", "node24", "composite", "docker"].includes(using)) {
    throw new ActionManifestError(
      `${label}: runs.using \`${using}\` is not supported; Solstice runs node20, node24 (node12 and node16 on node20) and composite actions`,
    );
  }
  const parsed = manifest.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path ?? [];
    // The line of the key at fault, or of the nearest entry that holds it.
    let offset: number | undefined;
    for (let n = where.length; n > 0 && offset === undefined; n--) offset = entryOffset(document, where.slice(0, n));
    const line = offset === undefined ? undefined : lines.linePos(offset).line;
    throw new ActionManifestError(
      `${label}: action.yml${line === undefined ? "" : ` line ${line}`} (${where.join(".") || "top"}): ${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}

/** Where the entry at `path` (a mapping's key, or a sequence's item) starts in the file, if it is there. */
function entryOffset(document: Document, path: readonly PropertyKey[]): number | undefined {
  const parent = path.length > 1 ? document.getIn(path.slice(0, -1), true) : document.contents;
  const last = path[path.length - 1];
  if (isMap(parent)) {
    const pair = parent.items.find((item) => isScalar(item.key) && item.key.value === last);
    return isScalar(pair?.key) ? pair.key.range?.[0] : undefined;
  }
  if (isSeq(parent) && typeof last === "number") {
    const item = parent.items[last];
    return isNode(item) ? item.range?.[0] : undefined;
  }
  return undefined;
}
