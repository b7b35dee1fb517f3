import { create, DebugAccessSchema, type JobRequest } from "@solstice/protocol";
import { ForgeKeysError, type ForgeKind, fetchForgeUserKeys } from "@solstice/ssh";
import type { Logger } from "pino";

/** The job-level env a workflow sets to ask for debug SSH into the job if it fails. */
export const DEBUG_SSH_FLAG = "SOLSTICE_DEBUG_SSH";

/**
 * When the job asks for debug SSH, adds the public keys the forge lists for the person who
 * triggered it (`github.actor` of the job's contexts), so that person can log in to the kept VM
 * (the orchestrator decides whether the label or repository allows it). A forge that cannot be
 * asked leaves only the operator's keys; the returned note says so, for the job's log.
 */
export async function addDebugAccess(
  request: JobRequest,
  forge: ForgeKind,
  log: Logger,
  signal?: AbortSignal,
): Promise<string | undefined> {
  if (request.env[DEBUG_SSH_FLAG]?.toLowerCase() !== "true") return undefined;
  const github = parseGithubContext(request.contexts?.githubJson ?? "");
  const actor = typeof github.actor === "string" ? github.actor : "";
  if (actor === "") return "debug SSH asked for, but the job names no actor: only the operator's keys can log in";
  const serverUrl = typeof github.server_url === "string" && github.server_url !== "" ? github.server_url : undefined;
  try {
    const publicKeys = await fetchForgeUserKeys({
      forge,
      username: actor,
      ...(serverUrl ? { baseUrl: serverUrl } : {}),
      ...(signal ? { signal } : {}),
    });
    request.debugAccess = create(DebugAccessSchema, { user: actor, publicKeys });
    return publicKeys.length === 0
      ? `debug SSH asked for, but ${actor} has no public SSH keys on the forge: only the operator's keys can log in`
      : undefined;
  } catch (error) {
    if (!(error instanceof ForgeKeysError)) throw error;
    log.warn({ err: error, actor }, "could not read the actor's public keys from the forge");
    return `debug SSH asked for, but ${actor}'s public keys could not be read from the forge (${error.message}): only the operator's keys can log in`;
  }
}

function parseGithubContext(json: string): Record<string, unknown> {
  try {
    const value: unknown = json === "" ? {} : JSON.parse(json);
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
