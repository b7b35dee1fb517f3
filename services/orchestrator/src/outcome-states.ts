import type { FinishedJobState, StepConclusion, StepResult } from "@solstice/db";
import { Outcome } from "@solstice/protocol";

const STEP_STATE: Record<Outcome, StepResult["state"]> = {
  [Outcome.UNSPECIFIED]: "failed",
  [Outcome.SUCCESS]: "succeeded",
  [Outcome.FAILURE]: "failed",
  [Outcome.CANCELLED]: "cancelled",
  [Outcome.SKIPPED]: "skipped",
};

/** How a step's outcome is recorded. */
export function stepStateOf(outcome: Outcome): StepResult["state"] {
  return STEP_STATE[outcome];
}

export function stepConclusionOf(outcome: Outcome): StepConclusion {
  return STEP_STATE[outcome];
}

/** How a job's result is recorded; an unspecified result counts as a failure, never a success. */
export function jobStateOf(result: Outcome): FinishedJobState {
  if (result === Outcome.SUCCESS) return "succeeded";
  if (result === Outcome.CANCELLED) return "cancelled";
  return "failed";
}
