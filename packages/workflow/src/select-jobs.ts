import { WorkflowError } from "./workflow-errors.ts";
import type { PlannedJob, Workflow } from "./workflow-plan.ts";

/** All jobs of the workflow, or only the one whose key is `jobKey`. */
export function selectJobs(workflow: Workflow, jobKey?: string): PlannedJob[] {
  if (jobKey === undefined) return workflow.jobs;
  const job = workflow.jobs.find((j) => j.key === jobKey);
  if (job !== undefined) return [job];
  const keys = workflow.jobs.map((j) => j.key).join(", ");
  throw new WorkflowError("unknown_job", `job \`${jobKey}\` is not in ${workflow.file}`, `jobs in this file: ${keys}`);
}
