import { WorkflowError } from "./workflow-errors.ts";

export interface JobStatus {
  /** A previous step failed (and did not have continue-on-error). */
  jobFailed: boolean;
  cancelled: boolean;
}

type Condition = (status: JobStatus) => boolean;

const success: Condition = (s) => !s.jobFailed && !s.cancelled;

// The executor evaluates `if:` just before a step runs; until the full expression language arrives
// it knows only the status functions, and parsing rejects everything else so nothing is misread.
const CONDITIONS: Readonly<Record<string, Condition>> = {
  "": success,
  "success()": success,
  "failure()": (s) => s.jobFailed && !s.cancelled,
  "always()": () => true,
  "cancelled()": (s) => s.cancelled,
  "!cancelled()": (s) => !s.cancelled,
};

export const SUPPORTED_CONDITIONS: readonly string[] = Object.keys(CONDITIONS).filter((c) => c !== "");

function normalize(text: string): string {
  let body = text.trim();
  if (body.startsWith("${{") && body.endsWith("}}")) body = body.slice(3, -2);
  // Function names are case-insensitive in Actions, and none of the supported forms has meaningful spaces.
  return body.replace(/\s+/g, "").toLowerCase();
}

export function isSupportedCondition(text: string): boolean {
  return CONDITIONS[normalize(text)] !== undefined;
}

/**
 * Decides whether a step runs. Supports an empty condition (success()), success(), failure(), always(),
 * cancelled() and !cancelled(), bare or wrapped in `${{ }}`; throws `unsupported_condition` otherwise.
 */
export function evaluateStepCondition(text: string, status: JobStatus): boolean {
  const condition = CONDITIONS[normalize(text)];
  if (condition === undefined) {
    throw new WorkflowError(
      "unsupported_condition",
      `condition \`${text}\` is not supported yet`,
      `use one of: ${SUPPORTED_CONDITIONS.join(", ")}`,
    );
  }
  return condition(status);
}
