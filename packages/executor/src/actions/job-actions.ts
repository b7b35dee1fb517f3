import path from "node:path";
import type { ActionArchive, JobRequest } from "@solstice/protocol";
import { parseActionReference } from "@solstice/workflow";
import { type ActionManifest, readActionManifest } from "./action-manifest.ts";
import { JobActionSources } from "./action-sources.ts";
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

/**
 * As GitHub: a job's step is level 1 and actions may nest through composite actions down to
 * level 10 (actions/runner: `CompositeActionsMaxDepth = 9`, counted from 0 at the job's steps).
 */
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
  /** The unsealed download token of an archive the runner resolved (GitHub's action download info). */
  archiveToken?: (archive: ActionArchive) => string | undefined,
): Promise<Map<string, ResolvedAction>> {
  const sources = new JobActionSources(job, provider, signal, forgeToken, archiveToken);
  const resolved = new Map<string, ResolvedAction>();
  // The deepest level each action's subtree was walked at within the limit: it fits at any level
  // above that too, so only a deeper use is walked again. It is recorded once the walk is done, so
  // a composite that uses itself keeps going deeper and meets the limit, as on GitHub.
  const walkedAt = new Map<string, number>();
  const visit = async (uses: string, depth: number, where: string): Promise<void> => {
    if (depth > MAX_COMPOSITE_DEPTH) {
      throw new JobActionError(
        `${where}: actions nest more than ${MAX_COMPOSITE_DEPTH} levels deep through composite actions (GitHub's runner refuses this too: "Composite action depth exceeded max depth ${MAX_COMPOSITE_DEPTH - 1}"); does a composite action use itself?`,
      );
    }
    if ((walkedAt.get(uses) ?? 0) >= depth) return;
    const action = resolved.get(uses) ?? (await fetchAction(uses, where));
    await walkSteps(action, depth);
    walkedAt.set(uses, Math.max(walkedAt.get(uses) ?? 0, depth));
  };
  const fetchAction = async (uses: string, where: string): Promise<ResolvedAction> => {
    const reference = parseActionReference(uses);
    if ("error" in reference) throw new JobActionError(`${where}: ${reference.error}`);
    if (reference.kind !== "repository") {
      throw new JobActionError(
        `${where}: \`${uses}\` is not supported inside a composite action; Solstice runs actions from a repository (owner/name@ref)`,
      );
    }
    const fetched = await sources.fetch(reference);
    const manifest = await readActionManifest(path.join(fetched.tree, reference.path), `\`${uses}\``);
    if (manifest.runs.using === "docker") {
      throw new JobActionError(
        `${where}: \`${uses}\` is a Docker action (runs.using: docker), which Solstice does not run: run its container from a run: step in an image that has docker or podman, or use a JavaScript or composite action`,
      );
    }
    const action = { uses, fetched, path: reference.path, manifest };
    resolved.set(uses, action);
    return action;
  };
  const walkSteps = async (action: ResolvedAction, depth: number): Promise<void> => {
    if (action.manifest.runs.using !== "composite") return;
    for (const [index, step] of action.manifest.runs.steps.entries()) {
      if (step.uses !== undefined) await visit(step.uses, depth + 1, `\`${action.uses}\` step ${index + 1}`);
    }
  };
  try {
    for (const step of job.steps) {
      if (step.action.case === "uses") await visit(step.action.value.uses, 1, `step "${step.name}"`);
    }
  } catch (error) {
    sources.release();
    throw error;
  }
  return resolved;
}

/** The job is over: the host's cache may evict its actions again (the store holds them until then). */
export function releaseJobActions(provider: ActionProvider, actions: ReadonlyMap<string, ResolvedAction>): void {
  for (const action of actions.values()) provider.store.release(action.fetched);
}
