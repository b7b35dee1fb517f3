import { randomUUID } from "node:crypto";
import {
  type ContextsSchema,
  create,
  type FleetKeyring,
  type JobRequest,
  JobRequestSchema,
  type JobSource,
  type MessageInitShape,
  type PlannedStepSchema,
  SCHEMA_VERSION,
  secretContext,
  timestampFromDate,
} from "@solstice/protocol";
import { secretsReadBy } from "./expressions.ts";
import { WorkflowError } from "./workflow-errors.ts";
import type { Env, PlanContexts, PlannedJob, PlannedStepDef, Workflow } from "./workflow-plan.ts";

export interface JobRequestOrigin {
  readonly source: JobSource;
  /** The runner instance (or ciadm process) that follows the job's events. */
  readonly owner: string;
  readonly repository: { url: string; fullName: string; commitSha: string; ref: string };
  /** Where `uses: owner/name@ref` is fetched from (the forge's default actions URL); absent: the host's default. */
  readonly actionsUrl?: string;
  readonly jobId?: string;
  readonly attempt?: number;
  /** The `needs` context, when the jobs this one needs finished after the workflow was planned. */
  readonly needs?: Record<string, unknown>;
  /**
   * The secrets the job may read and the fleet keyring that seals them. Only the secrets the job
   * references travel, sealed; a referenced secret that is not given is empty, as on GitHub.
   */
  readonly secrets?: {
    readonly values: Readonly<Record<string, string>>;
    readonly keyring: Pick<FleetKeyring, "seal">;
  };
}

/** Turns one planned job of a workflow into the versioned message an orchestrator runs. */
export function toJobRequest(workflow: Workflow, job: PlannedJob, origin: JobRequestOrigin): JobRequest {
  if (job.matrixFromNeeds) {
    throw new WorkflowError(
      "invalid_workflow",
      `job "${job.key}" has a matrix made from its needs' outputs: it is planned when they finished`,
      "run the workflow with `ciadm run`, which runs the jobs it needs first",
    );
  }
  const jobId = origin.jobId ?? randomUUID();
  const referenced = new Set<string>();
  const split = (env: Env, where: string) => splitEnv(job, env, where, referenced, origin.secrets !== undefined);
  const jobEnv = split(job.env, "the job");
  const steps = job.steps.map((step) => toPlannedStep(step, split(step.env, `step "${step.name}"`), split));
  for (const step of job.steps) {
    if (step.kind !== "checkout" || step.tokenSecret === undefined) continue;
    // The token travels sealed like any secret the job reads.
    split({ token: { fromSecret: step.tokenSecret } }, `step "${step.name}" (token:)`);
  }
  // Text the executor evaluates may read secrets too (`curl -H "Bearer ${{ secrets.TOKEN }}"`).
  for (const name of secretsInText(job, origin.secrets?.values)) {
    if (origin.secrets === undefined) {
      throw new WorkflowError(
        "invalid_workflow",
        `job "${job.key}" reads secrets.${name} in an expression, but no secrets and fleet key were given to plan it; pass the secret (ciadm run --secret ${name}) or run the job without it`,
      );
    }
    referenced.add(name);
  }
  const secrets = [...referenced].sort().map((name) => ({
    name,
    value: origin.secrets?.keyring.seal(origin.secrets.values[name] ?? "", secretContext(jobId, name)),
  }));
  return create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId,
    attempt: origin.attempt ?? 1,
    source: origin.source,
    owner: origin.owner,
    repository: origin.repository,
    workflowPath: workflow.file,
    workflowJobId: job.key,
    jobName: job.name,
    runsOn: job.runsOn,
    timeoutSeconds: Math.round(job.timeoutMinutes * 60),
    steps,
    env: jobEnv.env,
    secretEnv: jobEnv.secretEnv,
    secrets,
    contexts: contextsJson({
      ...workflow.contexts,
      ...(job.matrix ? { matrix: job.matrix } : {}),
      ...(job.strategy ? { strategy: { ...job.strategy } } : {}),
      ...(origin.needs ? { needs: origin.needs } : {}),
    }),
    outputs: job.outputs,
    actionsUrl: origin.actionsUrl ?? "",
    submittedAt: timestampFromDate(new Date()),
  });
}

/**
 * The secrets read by the job's text that the executor evaluates, named as given (secret names
 * ignore case, as on GitHub); every secret given when one is read by a computed key.
 */
function secretsInText(job: PlannedJob, given: Readonly<Record<string, string>> = {}): Set<string> {
  const texts = [
    ...Object.values(job.env),
    ...job.steps.flatMap((step) => [
      step.name,
      step.workingDirectory,
      ...Object.values(step.env),
      step.kind === "run" ? step.script : undefined,
      ...(step.kind === "action" ? Object.values(step.inputs) : []),
    ]),
  ].filter((text): text is string => typeof text === "string");
  const givenNames = Object.keys(given);
  const names = new Set<string>();
  for (const text of texts) {
    const read = secretsReadBy(text);
    if (read.all) for (const name of givenNames) names.add(name);
    for (const lower of read.names) {
      names.add(givenNames.find((name) => name.toLowerCase() === lower) ?? lower.toUpperCase());
    }
  }
  return names;
}

function toPlannedStep(
  step: PlannedStepDef,
  env: SplitEnv,
  split: (env: Env, where: string) => SplitEnv,
): MessageInitShape<typeof PlannedStepSchema> {
  const common = {
    index: step.index,
    name: step.name,
    id: step.id ?? "",
    env: env.env,
    secretEnv: env.secretEnv,
    workingDirectory: step.workingDirectory ?? "",
    condition: step.condition ?? "",
    continueOnError: step.continueOnError,
    timeoutSeconds: Math.round((step.timeoutMinutes ?? 0) * 60),
  };
  if (step.kind === "run")
    return { ...common, action: { case: "run", value: { script: step.script, shell: step.shell } } };
  if (step.kind === "action") {
    // Secret inputs travel sealed like secret env values.
    const inputs = split(step.inputs, `step "${step.name}" (with:)`);
    return {
      ...common,
      action: { case: "uses", value: { uses: step.uses, inputs: inputs.env, secretInputs: inputs.secretEnv } },
    };
  }
  const checkout = {
    repository: step.repository ?? "",
    ref: step.ref ?? "",
    path: step.path ?? "",
    fetchDepth: step.fetchDepth,
    submodules: step.submodules ?? "",
    ...(step.clean === undefined ? {} : { clean: step.clean }),
    tokenSecret: step.tokenSecret ?? "",
  };
  return { ...common, action: { case: "checkout", value: checkout } };
}

interface SplitEnv {
  env: Record<string, string>;
  /** Variable → secret name; the value travels sealed in `JobRequest.secrets`, never in `env`. */
  secretEnv: Record<string, string>;
}

function splitEnv(job: PlannedJob, env: Env, where: string, referenced: Set<string>, canSeal: boolean): SplitEnv {
  const split: SplitEnv = { env: {}, secretEnv: {} };
  for (const [name, value] of Object.entries(env)) {
    if (typeof value === "string") {
      split.env[name] = value;
      continue;
    }
    if (!canSeal) {
      throw new WorkflowError(
        "invalid_workflow",
        `job "${job.key}": ${where} sets ${name} from secrets.${value.fromSecret}, but no secrets and fleet key were given to plan it; pass the secret (ciadm run --secret ${value.fromSecret}) or run the job without it`,
      );
    }
    split.secretEnv[name] = value.fromSecret;
    referenced.add(value.fromSecret);
  }
  return split;
}

/** The plan-time contexts, for the expressions the executor evaluates just before each step. */
function contextsJson(contexts: PlanContexts): MessageInitShape<typeof ContextsSchema> {
  const json = (value: Record<string, unknown> | undefined) => (value === undefined ? "" : JSON.stringify(value));
  return {
    githubJson: json(contexts.github),
    varsJson: json(contexts.vars),
    matrixJson: json(contexts.matrix),
    needsJson: json(contexts.needs),
    inputsJson: json(contexts.inputs),
    strategyJson: json(contexts.strategy),
  };
}
