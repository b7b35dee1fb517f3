import { readFile, stat } from "node:fs/promises";
import { parseKdlWorkflow } from "./kdl/parse-kdl-workflow.ts";
import { MAX_WORKFLOW_BYTES, type ParseWorkflowOptions, parseWorkflow } from "./parse-workflow.ts";
import { WorkflowError } from "./workflow-errors.ts";
import type { PlanContexts, Workflow } from "./workflow-plan.ts";

export interface LoadWorkflowFileOptions {
  /** Name shown in problems; the path itself when not given. */
  file?: string;
  contexts?: PlanContexts;
  signal?: AbortSignal;
}

/** Reads a workflow file and plans it: a `.kdl` file with `parseKdlWorkflow`, any other with `parseWorkflow`. */
export async function loadWorkflowFile(path: string, opts: LoadWorkflowFileOptions = {}): Promise<Workflow> {
  const file = opts.file ?? path;
  let text: string;
  try {
    const { size } = await stat(path);
    if (size > MAX_WORKFLOW_BYTES) {
      throw new WorkflowError(
        "unreadable_workflow",
        `${file} is ${size} bytes, larger than the ${MAX_WORKFLOW_BYTES} bytes a workflow file may have`,
      );
    }
    text = await readFile(path, { encoding: "utf8", ...(opts.signal === undefined ? {} : { signal: opts.signal }) });
  } catch (error) {
    if (error instanceof WorkflowError) throw error;
    throw new WorkflowError(
      "unreadable_workflow",
      `cannot read workflow file ${file}: ${(error as Error).message}`,
      undefined,
      {
        cause: error,
      },
    );
  }
  const parseOptions: ParseWorkflowOptions = {
    file,
    ...(opts.contexts === undefined ? {} : { contexts: opts.contexts }),
  };
  return isKdlWorkflow(path) ? parseKdlWorkflow(text, parseOptions) : parseWorkflow(text, parseOptions);
}

/** KDL workflows are told apart by their name, as `.solstice/workflow.kdl` is. */
export function isKdlWorkflow(path: string): boolean {
  return path.toLowerCase().endsWith(".kdl");
}
