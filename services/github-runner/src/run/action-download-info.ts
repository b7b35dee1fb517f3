import { httpRequest, jsonOf } from "../client/http.ts";
import { fixedBearer, LOCATIONS, VssClient } from "../client/vss-client.ts";
import { isRecord, prop, str } from "../client/wire-json.ts";
import { GitHubRunnerError } from "../errors.ts";
import { type JobMessage, variable } from "./job-message.ts";

/** One `uses: owner/name[/path]@ref` of the job, as GitHub's runner sends it to be resolved. */
export interface ActionReference {
  nameWithOwner: string;
  ref: string;
  path: string;
}

/** GitHub's answer for one reference: which commit, which archive, and the token to fetch it. */
export interface ActionDownloadInfo {
  /** `owner/name@ref`, GitHub's key. */
  reference: string;
  resolvedNameWithOwner: string;
  resolvedSha: string;
  tarballUrl: string;
  /** Absent when GitHub gave none: the job's own token is used then, as GitHub's runner does. */
  token?: string;
}

/**
 * Asks GitHub where the job's actions are, as its runner does before the first step
 * (actions/runner src/Runner.Worker/ActionManager.cs, GetDownloadInfoAsync):
 *
 * - run-service jobs (broker flow): `POST {system.github.launch_endpoint}/actions/build/{planId}/jobs/{jobId}/runnerresolve/actions`
 *   with the job's token as Bearer, body `{"actions":[{"action","version","path"}]}`, answer
 *   `{"actions":{"owner/name@ref":{"name","resolved_name","resolved_sha","tar_url","zip_url","version","authentication":{"token","expires_at"}}}}`,
 *   422 with `{"errors":{key:{"message"}}}` for a reference that cannot be resolved
 *   (src/Sdk/WebApi/WebApi/LaunchHttpClient.cs, LaunchContracts.cs);
 * - classic jobs: the pipelines service's resource 27d7f831-88c1-4719-8ca1-6a061dad90eb (route from
 *   connectionData), `POST` with `?jobId=`, api-version 6.0-preview.1, body
 *   `{"actions":[{"nameWithOwner","ref","path"}]}`, answer `{"actions":{key:{"nameWithOwner",
 *   "resolvedNameWithOwner","resolvedSha","tarballUrl","zipballUrl","ref","authentication"}}}`
 *   (src/Sdk/DTGenerated/Generated/TaskHttpClientBase.cs, ResolveActionDownloadInfoAsync;
 *   src/Sdk/DTWebApi/WebApi/ActionDownloadInfo.cs).
 *
 * References are sent once per `owner/name@ref`, as the runner groups them.
 */
export async function resolveActionDownloadInfo(
  message: JobMessage,
  flow: "broker" | "classic",
  references: ActionReference[],
  signal: AbortSignal,
): Promise<ActionDownloadInfo[]> {
  const unique = new Map<string, ActionReference>();
  for (const reference of references) {
    const key = `${reference.nameWithOwner}@${reference.ref}`;
    if (!unique.has(key)) unique.set(key, reference);
  }
  if (unique.size === 0) return [];
  const wanted = [...unique.values()];
  let answer: unknown;
  if (flow === "broker") {
    const launch = variable(message, "system.github.launch_endpoint");
    if (!launch) {
      throw new GitHubRunnerError(
        "protocol_error",
        "GitHub sent this job without system.github.launch_endpoint, where its actions are resolved",
      );
    }
    const url = new URL(`/actions/build/${message.plan.planId}/jobs/${message.jobId}/runnerresolve/actions`, launch);
    const res = await httpRequest({
      method: "POST",
      url: url.toString(),
      headers: { Authorization: `Bearer ${message.systemVss.token}`, Accept: "application/json" },
      json: { actions: wanted.map((r) => ({ action: r.nameWithOwner, version: r.ref, path: r.path })) },
      signal,
    });
    answer = jsonOf(res);
  } else {
    const vss = new VssClient(message.systemVss.url, fixedBearer(message.systemVss.token));
    const res = await vss.call({
      method: "POST",
      location: LOCATIONS.actionDownloadInfo,
      apiVersion: "6.0-preview.1",
      route: {
        scopeIdentifier: message.plan.scopeIdentifier,
        hubName: message.plan.planType,
        planId: message.plan.planId,
      },
      query: { jobId: message.jobId },
      json: { actions: wanted.map((r) => ({ nameWithOwner: r.nameWithOwner, ref: r.ref, path: r.path })) },
      signal,
    });
    answer = jsonOf(res);
  }
  const actions = prop(answer, "actions");
  if (!isRecord(actions)) {
    throw new GitHubRunnerError("protocol_error", "GitHub's action download info has no actions map");
  }
  return [...unique.keys()].map((key) => {
    const info = actions[key] ?? Object.entries(actions).find(([k]) => k.toLowerCase() === key.toLowerCase())?.[1];
    // The two flows name the same fields differently (snake_case from Launch, camelCase classic).
    const field = (classic: string, launch: string) => str(prop(info, classic)) ?? str(prop(info, launch)) ?? "";
    const sha = field("resolvedSha", "resolved_sha");
    const tarballUrl = field("tarballUrl", "tar_url");
    if (!isRecord(info) || !/^[0-9a-f]{40}$/.test(sha) || !/^https?:\/\//i.test(tarballUrl)) {
      throw new GitHubRunnerError(
        "protocol_error",
        `GitHub's action download info has no commit and archive for ${key}`,
        "the action's repository or ref may not exist, or the runner may not be allowed to use it",
      );
    }
    const token = str(prop(prop(info, "authentication"), "token"));
    return {
      reference: key,
      resolvedNameWithOwner: field("resolvedNameWithOwner", "resolved_name") || key.slice(0, key.lastIndexOf("@")),
      resolvedSha: sha,
      tarballUrl,
      ...(token ? { token } : {}),
    };
  });
}
