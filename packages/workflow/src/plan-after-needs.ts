import { parseWorkflow } from "./parse-workflow.ts";
import type { NeedsContext } from "./run-graph.ts";
import { WorkflowError } from "./workflow-errors.ts";
import type { PlannedJob, Workflow } from "./workflow-plan.ts";

/**
 * Plans a job whose strategy reads the outputs of the jobs it needs (`matrixFromNeeds`), now that
 * they finished: one PlannedJob per combination of its matrix, as a forge expands such a matrix
 * once the job's needs are done. Throws WorkflowValidationError listing the job's problems.
 */
export function planAfterNeeds(workflow: Workflow, job: PlannedJob, needs: NeedsContext): PlannedJob[] {
  if (workflow.source === undefined) {
    throw new WorkflowError(
      "invalid_workflow",
      `job "${job.key}" has a matrix made from its needs' outputs, but the workflow was planned without its text`,
    );
  }
  return parseWorkflow(workflow.source, {
    file: workflow.file,
    contexts: { ...workflow.contexts, needs },
    job: job.key,
  }).jobs;
}
