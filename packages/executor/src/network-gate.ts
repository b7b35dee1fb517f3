import type { JobRequest, PlannedStep } from "@solstice/protocol";
import type { NetworkPolicy, Vm } from "@solstice/vm";
import type { JobEventStream } from "./job-events.ts";

/** Applies a label's network policy as the job's steps go by. */
export interface NetworkGate {
  /** Called before each step is considered; cuts the network once the checkouts are behind. */
  beforeStep(step: PlannedStep, vm: Pick<Vm, "cutNetwork">): Promise<void>;
}

/**
 * Under `none-after-checkout`, the guest's network is cut right before the first step that comes
 * after the job's last checkout step (before the first step at all when there is none), whether
 * the checkout succeeded or not, so no code of the job's own runs with the network on after its
 * sources are in. A VM that cannot be cut fails the job: it is never run with the network on.
 */
export function networkGate(
  policy: NetworkPolicy | undefined,
  job: Pick<JobRequest, "steps">,
  events: Pick<JobEventStream, "line">,
): NetworkGate {
  const lastCheckout = job.steps.reduce(
    (last, step) => (step.action.case === "checkout" ? Math.max(last, step.index) : last),
    -1,
  );
  let open = policy === "none-after-checkout";
  return {
    async beforeStep(step, vm) {
      if (!open || step.index <= lastCheckout) return;
      open = false;
      if (!vm.cutNetwork) {
        throw new Error("this label's network policy is none-after-checkout, but this host's VMs cannot be cut off");
      }
      await vm.cutNetwork();
      events.line(
        "Network: the VM's network is cut (label policy none-after-checkout); the steps from here on have none",
        "system",
      );
    },
  };
}
