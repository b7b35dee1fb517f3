import path from "node:path";
import type { JobRequest } from "@solstice/protocol";
import { parseActionReference } from "@solstice/workflow";
import { type ActionManifest, readActionManifest } from "./action-manifest.ts";
import type { ActionStore, FetchedAction } from "./action-store.ts";
import type { NodeRuntimeStore } from "./node-runtime.ts";

/** What a host gives jobs that use actions: where actions come from and a Node runtime for the guest. */
export interface ActionProvider {
  readonly store: ActionStore;
  readonly node: NodeRuntimeStore;
  /** For `uses: owner/name@ref` when the job names no actions URL (e.g. https://github.com). */
  readonly defaultUrl: string;
}

/** One action of the job, fetched and read on the host. */
export interface ResolvedAction {
  /** `uses:` as written. */
  readonly uses: string;
  readonly fetched: FetchedAction;
  /** The action's folder inside its repository, "" for the root. */
  readonly path: string;
  readonly manifest: ActionManifest;
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/** As GitHub: a composite action may use composite actions up to 10 levels deep. */
export const MAX_COMPOSITE_DEPTH = 10;

export class JobActionError extends Error {
  override readonly name = "JobActionError";
  readonly code = "job_action";
}

/**
 * Fetches every action the job uses — the steps' and, through composite actions, theirs — and
 * reads their action.yml, before the VM boots: a Docker action, a missing ref or a manifest that
 * cannot run fails the job with no VM started, as GitHub fails it in "Set up job".
 */
export async function resolveJobActions(
  job: JobRequest,
  provider: ActionProvider,
  signal: AbortSignal,
  /** The job's own forge token: it authenticates fetches from the job's own forge (private actions there). */
  forgeToken?: string,
): Promise<Map<string, ResolvedAction>> {
  const forge = originOf(job.repository?.url ?? "");
  const resolved = new Map<string, ResolvedAction>();
  const visit = async (uses: string, depth: number, where: string): Promise<void> => {
    if (depth > MAX_COMPOSITE_DEPTH) {
      throw new JobActionError(
        `${where}: composite actions nest more than ${MAX_COMPOSITE_DEPTH} deep (as on GitHub); simplify the actions`,
      );
    }
    if (resolved.has(uses)) return;
    const reference = parseActionReference(uses);
    if ("error" in reference) throw new JobActionError(`${where}: ${reference.error}`);
    if (reference.kind !== "repository") {
      throw new JobActionError(
        `${where}: \`${uses}\` is not supported inside a composite action; Solstice runs actions from a repository (owner/name@ref)`,
      );
    }
    const baseUrl = reference.baseUrl ?? (job.actionsUrl || provider.defaultUrl);
    // The forge's token goes only to the forge that issued it, as the Forgejo runner does; it
    // authenticates git on the host and never reaches the guest.
    const token = forgeToken && forge !== undefined && originOf(baseUrl) === forge ? forgeToken : undefined;
    const fetched = await provider.store.fetch(
      { baseUrl, owner: reference.owner, name: reference.name, ref: reference.ref, ...(token ? { token } : {}) },
      signal,
    );
    const manifest = await readActionManifest(path.join(fetched.tree, reference.path), `\`${uses}\``);
    if (manifest.runs.using === "docker") {
      throw new JobActionError(
        `${where}: \`${uses}\` is a Docker action (runs.using: docker), which Solstice does not run: run its container from a run: step in an image that has docker or podman, or use a JavaScript or composite action`,
      );
    }
    resolved.set(uses, { uses, fetched, path: reference.path, manifest });
    if (manifest.runs.using !== "composite") return;
    for (const [index, step] of manifest.runs.steps.entries()) {
      if (step.uses !== undefined) await visit(step.uses, depth + 1, `\`${uses}\` step ${index + 1}`);
    }
  };
  for (const step of job.steps) {
    if (step.action.case === "uses") await visit(step.action.value.uses, 1, `step "${step.name}"`);
  }
  return resolved;
}
