import { createHash, randomUUID } from "node:crypto";
import type { Json } from "./wire.ts";

// Builds the AgentJobRequestMessage GitHub sends for one workflow job (protocol doc §6), from a
// small description. Expressions are encoded as GitHub encodes them: a value that is a whole
// `${{ x }}` becomes a BasicExpression token `x`; text around expressions becomes
// `format('…{0}…', x)`, as the workflow parser does (github-act-runner protocol/template_token_test.go).

export type FakeStepSpec =
  | {
      run: string;
      name?: string;
      id?: string;
      env?: Record<string, string>;
      shell?: string;
      workingDirectory?: string;
      if?: string;
      continueOnError?: boolean;
      timeoutMinutes?: number;
    }
  | {
      uses: string;
      name?: string;
      id?: string;
      with?: Record<string, string>;
      env?: Record<string, string>;
      if?: string;
    };

export interface FakeJobSpec {
  /** The job's display name. Default "build". */
  name?: string;
  steps: FakeStepSpec[];
  env?: Record<string, string>;
  defaults?: { shell?: string; workingDirectory?: string };
  secrets?: Record<string, string>;
  vars?: Record<string, string>;
  /** Entries of the github context, over the fake's defaults (repository, sha, ref, server_url…). */
  github?: Record<string, unknown>;
  matrix?: Record<string, unknown>;
  /** The job id of an earlier job of the same workflow run (they share its artifacts). */
  sameRunAs?: string;
  /** The variable actions_uses_cache_service_v2 is true: actions use the cache service v2 (twirp). */
  cacheServiceV2?: boolean;
  /** The job's `outputs:`, e.g. { greeting: "${{ steps.hello.outputs.text }}" }. */
  outputs?: Record<string, string>;
  /** `container:` image; GitHub sends it and a runner without containers must refuse the job. */
  container?: string;
  /** plan.version; 8 and later end classic jobs with the JobCompleted plan event. Default 13. */
  planVersion?: number;
}

export interface JobIdentity {
  messageType: "RunnerJobRequest" | "PipelineAgentJobRequest";
  jobId: string;
  planId: string;
  timelineId: string;
  scopeIdentifier: string;
  planType: string;
  requestId: number;
  systemVssUrl: string;
  jobToken: string;
  resultsUrl: string;
  feedStreamUrl: string;
  serverUrl: string;
  billingOwnerId: string;
  /** Where run-service jobs resolve their actions (system.github.launch_endpoint); "" for none. */
  launchUrl: string;
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** A workflow value as GitHub's parser turns it into a TemplateToken. */
export function valueToken(value: string): unknown {
  const parts = [...value.matchAll(/\$\{\{(.*?)\}\}/gs)];
  if (parts.length === 0) return value;
  const first = parts[0];
  if (parts.length === 1 && first && first[0] === value.trim() && value.trim() === value) {
    return { type: 3, expr: (first[1] ?? "").trim() };
  }
  let format = "";
  const args: string[] = [];
  let last = 0;
  for (const m of parts) {
    format += value.slice(last, m.index).replace(/\{/g, "{{").replace(/\}/g, "}}");
    format += `{${args.length}}`;
    args.push((m[1] ?? "").trim());
    last = (m.index ?? 0) + m[0].length;
  }
  format += value.slice(last).replace(/\{/g, "{{").replace(/\}/g, "}}");
  return { type: 3, expr: `format(${[quote(format), ...args].join(", ")})` };
}

const mapping = (entries: Record<string, unknown>) => ({
  type: 2,
  map: Object.entries(entries).map(([key, value]) => ({ key, value })),
});

const dictionary = (entries: Record<string, unknown>): unknown => ({
  t: 2,
  d: Object.entries(entries).map(([k, v]) => ({ k, v: contextValue(v) })),
});

function contextValue(value: unknown): unknown {
  if (Array.isArray(value)) return { t: 1, a: value.map(contextValue) };
  if (value !== null && typeof value === "object") return dictionary(value as Record<string, unknown>);
  return value;
}

function reference(uses: string): Json {
  if (uses.startsWith("docker://")) return { type: "containerRegistry", image: uses.slice("docker://".length) };
  if (uses.startsWith("./"))
    return { type: "repository", repositoryType: "self", name: "", ref: "", path: uses.slice(2) };
  const [path = "", ref = ""] = uses.split("@");
  const [owner = "", repo = "", ...rest] = path.split("/");
  return { type: "repository", repositoryType: "GitHub", name: `${owner}/${repo}`, ref, path: rest.join("/") };
}

/** The job message, and the record id of each step (its timeline record). */
export function buildJobMessage(spec: FakeJobSpec, id: JobIdentity): { message: Json; stepIds: string[] } {
  const secrets = spec.secrets ?? {};
  const github: Record<string, unknown> = {
    repository: "acme/app",
    repository_owner: "acme",
    sha: "0123456789abcdef0123456789abcdef01234567",
    ref: "refs/heads/main",
    ref_name: "main",
    event_name: "push",
    server_url: id.serverUrl,
    api_url: `${id.serverUrl}/api/v3`,
    run_id: "1",
    run_number: "1",
    run_attempt: "1",
    workflow: "ci",
    job: "build",
    actor: "octocat",
    workspace: "/home/runner/_work/app/app",
    event: {},
    ...spec.github,
  };
  const stepIds: string[] = [];
  const steps = spec.steps.map((step, index) => {
    const stepId = randomUUID();
    stepIds.push(stepId);
    const contextName =
      step.id ??
      (`run` in step
        ? `__run${index ? `_${index + 1}` : ""}`
        : `__${step.uses.split("@")[0]?.replace(/[^A-Za-z0-9]/g, "_")}`);
    const common = {
      type: "action",
      id: stepId,
      name: contextName,
      contextName,
      condition: step.if ?? "success()",
      ...(step.env
        ? { environment: mapping(Object.fromEntries(Object.entries(step.env).map(([k, v]) => [k, valueToken(v)]))) }
        : {}),
    };
    if ("run" in step) {
      return {
        ...common,
        displayName: step.name ?? `Run ${step.run.split("\n")[0]}`,
        reference: { type: "script" },
        inputs: mapping({
          script: valueToken(step.run),
          ...(step.shell ? { shell: step.shell } : {}),
          ...(step.workingDirectory ? { workingDirectory: valueToken(step.workingDirectory) } : {}),
        }),
        continueOnError: step.continueOnError ?? false,
        ...(step.timeoutMinutes !== undefined
          ? { timeoutInMinutes: { type: 3, expr: String(step.timeoutMinutes) } }
          : {}),
      };
    }
    return {
      ...common,
      displayName: step.name ?? `Run ${step.uses}`,
      reference: reference(step.uses),
      inputs: mapping(Object.fromEntries(Object.entries(step.with ?? {}).map(([k, v]) => [k, valueToken(v)]))),
      continueOnError: false,
    };
  });
  const defaults =
    spec.defaults?.shell || spec.defaults?.workingDirectory
      ? [
          mapping({
            run: mapping({
              ...(spec.defaults.shell ? { shell: spec.defaults.shell } : {}),
              ...(spec.defaults.workingDirectory ? { "working-directory": spec.defaults.workingDirectory } : {}),
            }),
          }),
        ]
      : [];
  const variables: Record<string, { value: string; isSecret: boolean }> = {
    "system.github.token": {
      value: `ghs_${createHash("sha256").update(id.jobToken).digest("hex").slice(0, 36)}`,
      isSecret: true,
    },
    ...(spec.cacheServiceV2 ? { actions_uses_cache_service_v2: { value: "true", isSecret: false } } : {}),
    "system.github.job": { value: String(github.job), isSecret: false },
    "system.github.results_endpoint": { value: id.resultsUrl, isSecret: false },
    "system.runnerGroupName": { value: "Default", isSecret: false },
    "DistributedTask.NewActionMetadata": { value: "true", isSecret: false },
    ...(id.launchUrl ? { "system.github.launch_endpoint": { value: id.launchUrl, isSecret: false } } : {}),
  };
  for (const [name, value] of Object.entries(secrets)) variables[name] = { value, isSecret: true };
  const message: Json = {
    messageType: id.messageType,
    plan: {
      scopeIdentifier: id.scopeIdentifier,
      planId: id.planId,
      planType: id.planType,
      version: spec.planVersion ?? 13,
      planGroup: null,
      artifactUri: `vstfs:///Build/Build/${id.requestId}`,
      artifactLocation: null,
      owner: { id: 1, name: "ci" },
      definition: { id: 1, name: "ci" },
    },
    timeline: { id: id.timelineId, changeId: 1, location: null },
    jobId: id.jobId,
    jobDisplayName: spec.name ?? "build",
    jobName: "build",
    requestId: id.requestId,
    lockedUntil: "0001-01-01T00:00:00",
    resources: {
      endpoints: [
        {
          name: "SystemVssConnection",
          url: id.systemVssUrl,
          authorization: { scheme: "OAuth", parameters: { AccessToken: id.jobToken } },
          data: {
            CacheServerUrl: `${id.serverUrl}/cache/`,
            ResultsServiceUrl: id.resultsUrl,
            ...(id.feedStreamUrl ? { FeedStreamUrl: id.feedStreamUrl } : {}),
          },
          isShared: false,
          isReady: true,
        },
      ],
      repositories: [
        {
          alias: "self",
          id: "github",
          type: "GitHub",
          version: github.sha,
          url: `${id.serverUrl}/${String(github.repository)}`,
          properties: { id: "github", ref: github.ref },
        },
      ],
    },
    contextData: {
      github: dictionary(github),
      needs: { t: 2 },
      strategy: dictionary({ "fail-fast": true, "job-index": 0, "job-total": 1, "max-parallel": 1 }),
      matrix: spec.matrix ? dictionary(spec.matrix) : null,
      inputs: null,
      vars: dictionary(spec.vars ?? {}),
    },
    workspace: { clean: null },
    mask: [
      { type: "regex", value: variables["system.github.token"]?.value },
      ...Object.values(secrets).map((value) => ({ type: "regex", value })),
    ],
    variables,
    environmentVariables: spec.env
      ? [mapping(Object.fromEntries(Object.entries(spec.env).map(([k, v]) => [k, valueToken(v)])))]
      : [],
    defaults,
    steps,
    fileTable: [".github/workflows/ci.yml"],
    jobContainer: spec.container ? mapping({ image: spec.container }) : null,
    jobServiceContainers: null,
    jobOutputs: spec.outputs
      ? mapping(Object.fromEntries(Object.entries(spec.outputs).map(([k, v]) => [k, valueToken(v)])))
      : null,
    actionsEnvironment: null,
    billingOwnerId: id.billingOwnerId,
  };
  return { message, stepIds };
}
