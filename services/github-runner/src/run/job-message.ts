import { isRecord, list, num, prop, str } from "../client/wire-json.ts";
import { GitHubRunnerError } from "../errors.ts";
import { contextDataToJson } from "./context-data.ts";

export interface JobVariable {
  value: string;
  isSecret: boolean;
}

/** The parts of an AgentJobRequestMessage that the runner uses; the rest is ignored, as it must be. */
export interface JobMessage {
  messageType: string;
  plan: { scopeIdentifier: string; planId: string; planType: string; version: number };
  timelineId: string;
  jobId: string;
  jobDisplayName: string;
  jobName: string;
  requestId: number;
  /** The SystemVssConnection endpoint: the base of renew/complete (run service) or of the timeline (classic). */
  systemVss: {
    url: string;
    token: string;
    feedStreamUrl: string;
    /** `data.CacheServerUrl`, `ResultsServiceUrl`, `PipelinesServiceUrl`, `GenerateIdTokenUrl` ("" when absent). */
    cacheServerUrl: string;
    resultsServiceUrl: string;
    pipelinesServiceUrl: string;
    generateIdTokenUrl: string;
  };
  /** contextData as plain JSON, by context name. */
  contexts: Record<string, unknown>;
  /** By lower-case name (GitHub's variable names are case-insensitive). */
  variables: Map<string, JobVariable & { name: string }>;
  masks: { type: string; value: string }[];
  steps: unknown[];
  environmentVariables: unknown[];
  defaults: unknown[];
  jobContainer: unknown;
  jobServiceContainers: unknown;
  jobOutputs: unknown;
  fileTable: string[];
  billingOwnerId: string;
}

export function parseJobMessage(json: unknown): JobMessage {
  if (!isRecord(json)) throw new GitHubRunnerError("protocol_error", "the job message is not a JSON object");
  const plan = prop(json, "plan");
  const endpoint = list(prop(prop(json, "resources"), "endpoints")).find(
    (e) => str(prop(e, "name"))?.toLowerCase() === "systemvssconnection",
  );
  const jobId = str(prop(json, "jobId"));
  const planId = str(prop(plan, "planId"));
  if (!jobId || !planId || !endpoint) {
    throw new GitHubRunnerError(
      "protocol_error",
      "the job message lacks its jobId, plan or SystemVssConnection endpoint",
    );
  }
  const contexts: Record<string, unknown> = {};
  const contextData = prop(json, "contextData");
  if (isRecord(contextData)) {
    for (const [name, value] of Object.entries(contextData)) contexts[name] = contextDataToJson(value);
  }
  const variables = new Map<string, JobVariable & { name: string }>();
  const vars = prop(json, "variables");
  if (isRecord(vars)) {
    for (const [name, v] of Object.entries(vars)) {
      variables.set(name.toLowerCase(), {
        name,
        value: str(prop(v, "value")) ?? "",
        isSecret: prop(v, "isSecret") === true,
      });
    }
  }
  const data = prop(endpoint, "data");
  return {
    messageType: str(prop(json, "messageType")) ?? "",
    plan: {
      scopeIdentifier: str(prop(plan, "scopeIdentifier")) ?? "",
      planId,
      planType: str(prop(plan, "planType")) ?? "",
      version: num(prop(plan, "version")) ?? 0,
    },
    timelineId: str(prop(prop(json, "timeline"), "id")) ?? "",
    jobId,
    jobDisplayName: str(prop(json, "jobDisplayName")) ?? "",
    jobName: str(prop(json, "jobName")) ?? "",
    requestId: num(prop(json, "requestId")) ?? 0,
    systemVss: {
      url: str(prop(endpoint, "url")) ?? "",
      token: str(prop(prop(prop(endpoint, "authorization"), "parameters"), "AccessToken")) ?? "",
      feedStreamUrl: str(prop(data, "FeedStreamUrl")) ?? "",
      cacheServerUrl: str(prop(data, "CacheServerUrl")) ?? "",
      resultsServiceUrl: str(prop(data, "ResultsServiceUrl")) ?? "",
      pipelinesServiceUrl: str(prop(data, "PipelinesServiceUrl")) ?? "",
      generateIdTokenUrl: str(prop(data, "GenerateIdTokenUrl")) ?? "",
    },
    contexts,
    variables,
    masks: list(prop(json, "mask")).map((m) => ({
      type: str(prop(m, "type")) ?? "",
      value: str(prop(m, "value")) ?? "",
    })),
    steps: list(prop(json, "steps")),
    environmentVariables: list(prop(json, "environmentVariables")),
    defaults: list(prop(json, "defaults")),
    jobContainer: prop(json, "jobContainer") ?? null,
    jobServiceContainers: prop(json, "jobServiceContainers") ?? null,
    jobOutputs: prop(json, "jobOutputs") ?? null,
    fileTable: list(prop(json, "fileTable")).filter((f): f is string => typeof f === "string"),
    billingOwnerId: str(prop(json, "billingOwnerId")) ?? "",
  };
}

export function variable(message: JobMessage, name: string): string | undefined {
  return message.variables.get(name.toLowerCase())?.value;
}

/** The job's token (GITHUB_TOKEN). */
export function githubToken(message: JobMessage): string {
  return variable(message, "system.github.token") ?? "";
}

/**
 * The secrets context as the official runner builds it: every secret variable except the
 * runner's own access tokens, plus GITHUB_TOKEN.
 */
export function secretsOf(message: JobMessage): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const v of message.variables.values()) {
    const lower = v.name.toLowerCase();
    if (!v.isSecret || lower === "system.accesstoken" || lower === "system.github.token") continue;
    secrets[v.name] = v.value;
  }
  const token = githubToken(message);
  if (token && !Object.keys(secrets).some((k) => k.toLowerCase() === "github_token")) secrets.GITHUB_TOKEN = token;
  return secrets;
}

/** Every value that must never reach GitHub's log unmasked. */
export function maskValuesOf(message: JobMessage): { values: string[]; patterns: string[] } {
  const values = new Set<string>();
  const patterns: string[] = [];
  for (const v of message.variables.values()) if (v.isSecret && v.value) values.add(v.value);
  for (const m of message.masks) {
    if (!m.value) continue;
    if (m.type.toLowerCase() === "regex") patterns.push(m.value);
    values.add(m.value);
  }
  const token = githubToken(message);
  if (token) {
    values.add(token);
    values.add(Buffer.from(`x-access-token:${token}`).toString("base64"));
  }
  if (message.systemVss.token) values.add(message.systemVss.token);
  return { values: [...values], patterns };
}
