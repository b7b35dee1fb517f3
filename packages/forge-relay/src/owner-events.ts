import type { Bus, Subscription } from "@solstice/bus";
import type { JobEvent } from "@solstice/protocol";

/** The runner's one owner subscription, with each job's events handed to whoever follows that job. */
export interface OwnerEvents {
  /** Hands `jobId`'s events to `onEvent` until the returned function is called. */
  follow(jobId: string, onEvent: (event: JobEvent) => void): () => void;
  stop(): Promise<void>;
}

/**
 * Consumes the owner's durable queue (`<owner>.#`). Events of jobs nobody follows (a job of a
 * previous run of this runner) are dropped: their forge job was already ended by that run or by
 * the forge.
 */
export async function followOwnerEvents(bus: Bus, owner: string): Promise<OwnerEvents> {
  const followers = new Map<string, (event: JobEvent) => void>();
  const subscription: Subscription = await bus.consumeEvents({
    owner,
    onEvent: async (event) => {
      followers.get(event.jobId)?.(event);
    },
  });
  return {
    follow(jobId, onEvent) {
      followers.set(jobId, onEvent);
      return () => {
        if (followers.get(jobId) === onEvent) followers.delete(jobId);
      };
    },
    stop: () => subscription.stop(),
  };
}
