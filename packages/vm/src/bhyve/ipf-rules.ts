import type { JobAddress } from "./address-pool.ts";

/**
 * ipfilter rules, in the global zone, that leave a guest only its answers to the orchestrator's
 * SSH connection (the `none-after-checkout` cut). They need the routed etherstub layout
 * (docs/illumos.md): the guest's packets enter the global zone on `gatewayInterface`, where the
 * global zone's own ipfilter sees them. The pass rule admits TCP from the guest's port 22 to the
 * gateway only with ACK set, so the guest cannot open a connection from port 22 itself.
 *
 * `add` inserts them at the head of the active list (`@1`, `@2`), ahead of the operator's own
 * rules; `remove` is the same rules without positions, as `ipf -r` matches them.
 */
export function cutRules(gatewayInterface: string, address: JobAddress): { add: string; remove: string } {
  const rules = [
    `pass in quick on ${gatewayInterface} proto tcp from ${address.ip}/32 port = 22 to ${address.gateway}/32 flags A/A`,
    `block in quick on ${gatewayInterface} from ${address.ip}/32 to any`,
  ];
  return {
    add: `${rules.map((rule, i) => `@${i + 1} ${rule}`).join("\n")}\n`,
    remove: `${rules.join("\n")}\n`,
  };
}

/** The file in a job's seed directory that keeps the rules to remove, for destroy and the reaper. */
export const CUT_RULES_FILE = "ipf-cut.remove";
