import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { RunnerLabel } from "@solstice/forge-relay";
import {
  type ForgeService,
  MAX_WORKFLOW_BYTES,
  type PlannedJob,
  parseWorkflow,
  type Workflow,
  WorkflowError,
} from "@solstice/workflow";
import { isMap, isSeq, parseDocument } from "yaml";
import { Result, type Task } from "./gen/runner/v1/messages_pb.ts";

/** A task this runner cannot run: the message goes to the forge's log, the task fails at once. */
export class TaskPayloadError extends Error {
  override readonly name = "TaskPayloadError";
  constructor(
    readonly code: "invalid_payload" | "unserved_label",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What a forge task turns into before it becomes a JobRequest. */
export interface DecodedTask {
  workflow: Workflow;
  job: PlannedJob;
  /** This runner's label that the job's runs-on named: it gives the fleet label. */
  label: RunnerLabel;
  /** The forge's per-task token, for the checkout (the order of precedence is the Forgejo runner's). */
  token: string;
  /**
   * ACTIONS_RUNTIME_TOKEN: the context's `forgejo_runtime_token` (then `gitea_runtime_token`), else
   * the task token, as the Forgejo runner falls back.
   */
  runtimeToken: string;
  /** `github.repository`, e.g. alice/demo. */
  repository: string;
  /** The forge's URL, from the context's server_url (trailing slash removed). */
  serverUrl: string;
  /**
   * Where `uses: owner/name@ref` comes from: the instance's default actions URL (Forgejo's
   * `forgejo_default_actions_url`, Gitea's `gitea_default_actions_url`), else the forge itself.
   */
  actionsUrl: string;
  sha: string;
  ref: string;
}

/** The instance serves artifacts (v4 through its results API) to the jobs it hands out. */
const FORGEJO_SERVICES: ReadonlySet<ForgeService> = new Set(["artifacts"]);

/** A context value as text; the forge sends strings, anything else counts as absent. */
export function contextText(context: JsonObject, key: string): string {
  const value: JsonValue | undefined = context[key];
  return typeof value === "string" ? value : "";
}

/** The task's context, or an empty one: the field is optional on the wire. */
export function taskContext(task: Task): JsonObject {
  return task.context ?? {};
}

/**
 * Every value that must never reach the forge's log in clear: the secrets (the three token
 * secrets among them), the context's token and runtime tokens. Computed apart from decoding, so
 * that a task we refuse is masked too.
 */
export function taskMasks(task: Task): string[] {
  const context = taskContext(task);
  const values = [
    ...Object.values(task.secrets),
    contextText(context, "token"),
    contextText(context, "forgejo_runtime_token"),
    contextText(context, "gitea_runtime_token"),
  ];
  return [...new Set(values.filter((v) => v.length > 0))];
}

/**
 * The number of YAML steps of the payload's job, which is how the forge numbers its StepState
 * ids; counted apart from planning so that a refused payload still gets every step reported.
 */
export function countSteps(task: Task): number {
  try {
    const doc = parseDocument(payloadText(task), { uniqueKeys: false });
    const jobs = doc.get("jobs");
    if (!isMap(jobs)) return 0;
    const job = jobs.items[0]?.value;
    const steps = isMap(job) ? job.get("steps") : undefined;
    return isSeq(steps) ? steps.items.length : 0;
  } catch {
    return 0;
  }
}

function payloadText(task: Task): string {
  return new TextDecoder().decode(task.workflowPayload ?? new Uint8Array());
}

/**
 * The payload the forge's job parser made is one job cut out of a workflow, so two of its keys
 * mean something else than in a workflow file: `needs` names jobs that are not in it (their
 * outputs and results come in the task's `needs`), and `strategy.job-index`/`job-total` number
 * the matrix combination. Those are removed before planning; everything else is planned as written.
 */
function singleJobWorkflow(text: string): string {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) return text;
  const jobs = doc.get("jobs");
  if (!isMap(jobs)) return text;
  let changed = false;
  for (const item of jobs.items) {
    const job = item.value;
    if (!isMap(job)) continue;
    changed = job.delete("needs") || changed;
    const strategy = job.get("strategy");
    if (isMap(strategy)) {
      changed = strategy.delete("job-index") || changed;
      changed = strategy.delete("job-total") || changed;
    }
  }
  if (!changed) return text;
  try {
    return doc.toString();
  } catch {
    // A document YAML reads but cannot write back (an alias to a missing anchor): planning the
    // text as sent reports the problem with its line.
    return text;
  }
}

const RESULT_NAMES: Partial<Record<Result, string>> = {
  [Result.SUCCESS]: "success",
  [Result.FAILURE]: "failure",
  [Result.CANCELLED]: "cancelled",
  [Result.SKIPPED]: "skipped",
};

/**
 * Plans a forge task: its single-job payload with the task's contexts, checked by
 * packages/workflow (what we cannot run fails here, before any VM), and the label that serves it.
 * Throws only TaskPayloadError.
 */
export function decodeTask(task: Task, labels: readonly RunnerLabel[]): DecodedTask {
  const bytes = task.workflowPayload ?? new Uint8Array();
  if (bytes.length === 0) throw new TaskPayloadError("invalid_payload", "the task carries no workflow payload");
  if (bytes.length > MAX_WORKFLOW_BYTES) {
    throw new TaskPayloadError(
      "invalid_payload",
      `the workflow payload is ${bytes.length} bytes; at most ${MAX_WORKFLOW_BYTES} are accepted`,
    );
  }
  const context = taskContext(task);
  let workflow: Workflow;
  try {
    workflow = parseWorkflow(singleJobWorkflow(payloadText(task)), {
      file: contextText(context, "workflow") || "workflow.yml",
      services: FORGEJO_SERVICES,
      contexts: {
        github: githubContext(context),
        vars: { ...task.vars },
        needs: Object.fromEntries(
          Object.entries(task.needs).map(([id, need]) => [
            id,
            { outputs: { ...need.outputs }, result: RESULT_NAMES[need.result] ?? "" },
          ]),
        ),
      },
    });
  } catch (error) {
    if (error instanceof WorkflowError) throw new TaskPayloadError("invalid_payload", error.message, { cause: error });
    throw error;
  }
  const job = workflow.jobs[0];
  if (workflow.jobs.length !== 1 || !job) {
    throw new TaskPayloadError(
      "invalid_payload",
      `a task carries exactly one job; this payload plans ${workflow.jobs.length}`,
    );
  }
  const label = labels.find((l) => l.name === job.runsOn);
  if (!label) {
    throw new TaskPayloadError(
      "unserved_label",
      `runs-on "${job.runsOn}" is not a label of this runner; it serves: ${labels.map((l) => l.name).join(", ")}`,
    );
  }
  return {
    workflow,
    job,
    label,
    token:
      task.secrets.FORGEJO_TOKEN ||
      task.secrets.GITEA_TOKEN ||
      task.secrets.GITHUB_TOKEN ||
      contextText(context, "token"),
    runtimeToken:
      contextText(context, "forgejo_runtime_token") ||
      contextText(context, "gitea_runtime_token") ||
      contextText(context, "token"),
    repository: contextText(context, "repository"),
    serverUrl: contextText(context, "server_url").replace(/\/+$/, ""),
    actionsUrl: (
      contextText(context, "forgejo_default_actions_url") ||
      contextText(context, "gitea_default_actions_url") ||
      contextText(context, "server_url")
    ).replace(/\/+$/, ""),
    sha: contextText(context, "sha"),
    ref: contextText(context, "ref"),
  };
}

/** The github context the forge sends, without its tokens: they never travel in plain text. */
function githubContext(context: JsonObject): Record<string, unknown> {
  const {
    token: _token,
    forgejo_runtime_token: _forgejoRuntime,
    gitea_runtime_token: _giteaRuntime,
    forgejo_actions_id_token_request_token: _oidc,
    ...rest
  } = context;
  return rest;
}
