import { randomUUID } from "node:crypto";
import {
  create,
  type JobRequest,
  JobRequestSchema,
  type JobSource,
  type MessageInitShape,
  type PlannedStepSchema,
  SCHEMA_VERSION,
  timestampFromDate,
} from "@solstice/protocol";
import { WorkflowError } from "./workflow-errors.ts";
import type { Env, PlannedJob, PlannedStepDef, Workflow } from "./workflow-plan.ts";

export interface JobRequestOrigin {
  readonly source: JobSource;
  /** The runner instance (or ciadm process) that follows the job's events. */
  readonly owner: string;
  readonly repository: { url: string; fullName: string; commitSha: string; ref: string };
  readonly jobId?: string;
  readonly attempt?: number;
}

/** Turns one planned job of a workflow into the versioned message an orchestrator runs. */
export function toJobRequest(workflow: Workflow, job: PlannedJob, origin: JobRequestOrigin): JobRequest {
  return create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: origin.jobId ?? randomUUID(),
    attempt: origin.attempt ?? 1,
    source: origin.source,
    owner: origin.owner,
    repository: origin.repository,
    workflowPath: workflow.file,
    workflowJobId: job.key,
    jobName: job.name,
    runsOn: job.runsOn,
    timeoutSeconds: job.timeoutMinutes * 60,
    steps: job.steps.map((step) => toPlannedStep(job, step)),
    env: plainEnv(job, job.env, "the job"),
    submittedAt: timestampFromDate(new Date()),
  });
}

function toPlannedStep(job: PlannedJob, step: PlannedStepDef): MessageInitShape<typeof PlannedStepSchema> {
  const common = {
    index: step.index,
    name: step.name,
    id: step.id ?? "",
    env: plainEnv(job, step.env, `step "${step.name}"`),
    workingDirectory: step.workingDirectory ?? "",
    condition: step.condition ?? "",
    continueOnError: step.continueOnError,
    timeoutSeconds: Math.round((step.timeoutMinutes ?? 0) * 60),
  };
  if (step.kind === "run")
    return { ...common, action: { case: "run", value: { script: step.script, shell: step.shell } } };
  const checkout = {
    repository: step.repository ?? "",
    ref: step.ref ?? "",
    path: step.path ?? "",
    fetchDepth: step.fetchDepth,
  };
  return { ...common, action: { case: "checkout", value: checkout } };
}

/** Secrets travel sealed, never as plain env in the request; sealing arrives with the fleet key. */
function plainEnv(job: PlannedJob, env: Env, where: string): Record<string, string> {
  const plain: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (typeof value !== "string") {
      throw new WorkflowError(
        "invalid_workflow",
        `job "${job.key}": ${where} sets ${name} from secrets.${value.fromSecret}, but this Solstice build cannot carry secrets yet; run the job without it`,
      );
    }
    plain[name] = value;
  }
  return plain;
}
