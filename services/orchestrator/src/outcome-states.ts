import type { FinishedJobState, JobState, StepConclusion, StepResult } from "@solstice/db";
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

/** The result a recorded job state stands for; undefined while the job has not finished. */
export function outcomeOfState(state: JobState): Outcome | undefined {
  if (state === "succeeded") return Outcome.SUCCESS;
  if (state === "failed") return Outcome.FAILURE;
  if (state === "cancelled") return Outcome.CANCELLED;
  return undefined;
}
