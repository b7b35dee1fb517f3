import { FleetKeyError, type FleetKeyring, type JobRequest, runtimeTokenContext } from "@solstice/protocol";
import type { SecretMasker } from "../secret-masker.ts";

/** The variables a job's forge services give its steps: all of them to JavaScript actions, the OIDC pair to scripts. */
export interface ActionsRuntimeEnv {
  /** For a JavaScript action's process: ACTIONS_RUNTIME_URL/TOKEN, ACTIONS_RESULTS_URL, ACTIONS_CACHE_*. */
  readonly action: Readonly<Record<string, string>>;
  /** For a `run:` step: only ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN, when the forge offers OIDC. */
  readonly script: Readonly<Record<string, string>>;
}

export const NO_ACTIONS_RUNTIME: ActionsRuntimeEnv = { action: {}, script: {} };

/**
 * Unseals the job's actions runtime (JobRequest.actions_runtime) and registers its token with the
 * masker before any output leaves. The variables and the rule of who gets them are GitHub's
 * runner's (Runner.Worker/Handlers/NodeScriptActionHandler.cs for actions, ScriptHandler.cs for
 * scripts): a `run:` step never sees the runtime token itself.
 */
export function unsealActionsRuntime(
  job: JobRequest,
  keyring: Pick<FleetKeyring, "unseal"> | undefined,
  masker: SecretMasker,
): ActionsRuntimeEnv {
  const runtime = job.actionsRuntime;
  if (!runtime) return NO_ACTIONS_RUNTIME;
  if (runtime.token && !keyring) {
    throw new FleetKeyError(
      "no_fleet_key",
      `job ${job.jobId} carries a sealed actions runtime token, but this executor has no fleet key`,
      "give the service SOLSTICE_FLEET_KEYS or SOLSTICE_FLEET_KEYS_FILE with the key that sealed it",
    );
  }
  const token = runtime.token && keyring ? keyring.unseal(runtime.token, runtimeTokenContext(job.jobId)) : "";
  if (token !== "") masker.add(token);
  const action: Record<string, string> = {};
  const script: Record<string, string> = {};
  if (runtime.runtimeUrl !== "") action.ACTIONS_RUNTIME_URL = runtime.runtimeUrl;
  if (token !== "") action.ACTIONS_RUNTIME_TOKEN = token;
  if (runtime.cacheUrl !== "") action.ACTIONS_CACHE_URL = runtime.cacheUrl;
  if (runtime.resultsUrl !== "") action.ACTIONS_RESULTS_URL = runtime.resultsUrl;
  if (runtime.cacheServiceV2) action.ACTIONS_CACHE_SERVICE_V2 = "True";
  if (runtime.cacheMode !== "") action.ACTIONS_CACHE_MODE = runtime.cacheMode;
  if (runtime.idTokenRequestUrl !== "" && token !== "") {
    script.ACTIONS_ID_TOKEN_REQUEST_URL = runtime.idTokenRequestUrl;
    script.ACTIONS_ID_TOKEN_REQUEST_TOKEN = token;
    Object.assign(action, script);
  }
  return { action, script };
}
