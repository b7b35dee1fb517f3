import { WorkflowError } from "./workflow-errors.ts";
import type { PlannedJob, Workflow } from "./workflow-plan.ts";

/** All jobs of the workflow, or only the one whose key is `jobKey` (every combination of its matrix). */
export function selectJobs(workflow: Workflow, jobKey?: string): PlannedJob[] {
  if (jobKey === undefined) return workflow.jobs;
  const jobs = workflow.jobs.filter((j) => j.key === jobKey);
  if (jobs.length > 0) return jobs;
  const keys = [...new Set(workflow.jobs.map((j) => j.key))].join(", ");
  throw new WorkflowError("unknown_job", `job \`${jobKey}\` is not in ${workflow.file}`, `jobs in this file: ${keys}`);
}
