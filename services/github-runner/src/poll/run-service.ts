import { httpRequest, jsonOf } from "../client/http.ts";
import { joinUrl } from "../client/url-join.ts";
import type { BearerAuth } from "../client/vss-client.ts";
import { prop, str } from "../client/wire-json.ts";
import { HttpStatusError } from "../errors.ts";
import { RUNNER_OS } from "../version.ts";

/** The reference a RunnerJobRequest message carries; the job itself comes from the run service. */
export interface RunnerJobRequestRef {
  id: string;
  runnerRequestId: string;
  runServiceUrl: string;
  billingOwnerId: string;
  shouldAcknowledge: boolean;
}

export function parseJobRequestRef(body: string): RunnerJobRequestRef {
  const json = JSON.parse(body) as unknown;
  return {
    id: str(prop(json, "id")) ?? "",
    runnerRequestId: str(prop(json, "runner_request_id")) ?? "",
    runServiceUrl: str(prop(json, "run_service_url")) ?? "",
    billingOwnerId: str(prop(json, "billing_owner_id")) ?? "",
    shouldAcknowledge: prop(json, "should_acknowledge") === true,
  };
}

/**
 * `POST {run_service_url}/acquirejob` with the runner's token: the job message, or
 * undefined when the job is not ours to run (404 gone, 409 taken by another runner, 422
 * unprocessable) — the runner skips it, as the official one does.
 */
export async function acquireJob(
  ref: RunnerJobRequestRef,
  tokens: BearerAuth,
  signal?: AbortSignal,
): Promise<{ message: unknown } | { skipped: string }> {
  const call = async () =>
    httpRequest({
      method: "POST",
      url: joinUrl(ref.runServiceUrl, "acquirejob"),
      headers: { Authorization: `Bearer ${await tokens.token(signal)}`, Accept: "application/json" },
      json: { jobMessageId: ref.runnerRequestId, runnerOS: RUNNER_OS, billingOwnerId: ref.billingOwnerId },
      timeoutMs: 60_000,
      ...(signal ? { signal } : {}),
    });
  try {
    let res: Awaited<ReturnType<typeof call>>;
    try {
      res = await call();
    } catch (error) {
      if (!(error instanceof HttpStatusError) || error.status !== 401) throw error;
      tokens.invalidate();
      res = await call();
    }
    return { message: jsonOf(res) };
  } catch (error) {
    if (error instanceof HttpStatusError && [404, 409, 422].includes(error.status)) {
      return { skipped: `${error.status} ${error.detail || error.kind}`.trim() };
    }
    throw error;
  }
}

/** `POST {SystemVssConnection.url}renewjob` with the job's token → the new lockedUntil. */
export async function renewJob(
  systemVssUrl: string,
  jobToken: string,
  ids: { planId: string; jobId: string },
  signal?: AbortSignal,
): Promise<Date | undefined> {
  const res = await httpRequest({
    method: "POST",
    url: joinUrl(systemVssUrl, "renewjob"),
    headers: { Authorization: `Bearer ${jobToken}`, Accept: "application/json" },
    json: ids,
    timeoutMs: 60_000,
    ...(signal ? { signal } : {}),
  });
  const lockedUntil = str(prop(jsonOf(res), "lockedUntil"));
  return lockedUntil ? new Date(lockedUntil) : undefined;
}

/** `POST {SystemVssConnection.url}completejob` with the job's token. */
export async function completeJob(systemVssUrl: string, jobToken: string, body: unknown): Promise<void> {
  await httpRequest({
    method: "POST",
    url: joinUrl(systemVssUrl, "completejob"),
    headers: { Authorization: `Bearer ${jobToken}`, Accept: "application/json" },
    json: body,
    timeoutMs: 60_000,
  });
}
