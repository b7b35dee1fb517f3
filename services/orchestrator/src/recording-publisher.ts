import type { JobStore } from "@solstice/db";
import type { PublishEvent } from "@solstice/executor";
import { type JobEvent, timestampDate } from "@solstice/protocol";
import type { Logger } from "pino";
import { jobStateOf, stepConclusionOf, stepStateOf } from "./outcome-states.ts";

/**
 * Records the step and job boundaries of each event in PostgreSQL, then publishes the event to
 * the job's owner, so whoever hears of a boundary finds the row already showing it. A database
 * hiccup is logged, not fatal: the owner, who relays to the forge, still gets every event.
 */
export function recordingPublisher(
  publish: PublishEvent,
  store: JobStore,
  log: Logger,
  /** Asked at the job's end: the host gave the attempt up for its owner to retry (JobResult.givenBack). */
  givenBack: () => boolean,
): PublishEvent {
  return async (event: JobEvent) => {
    await record(event, store, log, givenBack);
    await publish(event);
  };
}

async function record(event: JobEvent, store: JobStore, log: Logger, givenBack: () => boolean): Promise<void> {
  const at = event.time ? timestampDate(event.time) : new Date();
  const { jobId, attempt, body } = event;
  try {
    switch (body.case) {
      case "stepStarted":
        await store.stepStarted(jobId, attempt, body.value.index, at);
        break;
      case "stepFinished":
        await store.stepFinished(
          jobId,
          attempt,
          body.value.index,
          {
            state: stepStateOf(body.value.outcome),
            conclusion: stepConclusionOf(body.value.conclusion),
            exitCode: body.value.exitCode >= 0 ? body.value.exitCode : null,
          },
          at,
        );
        break;
      case "jobFinished":
        await store.finishJob(
          jobId,
          attempt,
          {
            state: jobStateOf(body.value.result),
            ...(body.value.reason ? { reason: body.value.reason } : {}),
            outputs: { ...body.value.outputs },
            givenBack: givenBack(),
          },
          at,
        );
        break;
      default:
        break;
    }
  } catch (error) {
    log.error({ err: error, seq: String(event.seq), event: body.case }, "could not record a job event");
  }
}
