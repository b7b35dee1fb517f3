import { z } from "zod";

/** What a job's guest may reach, per label; `outbound` unless the operator says otherwise. */
export const NETWORK_POLICIES = ["outbound", "none-after-checkout"] as const;
export type NetworkPolicyName = (typeof NETWORK_POLICIES)[number];

/**
 * `label=policy,label=policy`, e.g. `omnios-r151054=none-after-checkout` (default: every label
 * `outbound`). Labels not listed, and labels this host does not serve, are left as they are.
 */
export const networkPolicySchema = z
  .string()
  .trim()
  .default("")
  .transform((text, ctx) => {
    const policies: Record<string, NetworkPolicyName> = {};
    for (const part of text === "" ? [] : text.split(",")) {
      const match = /^\s*([a-z0-9][a-z0-9._-]*)\s*=\s*([a-z-]+)\s*$/i.exec(part);
      const policy = NETWORK_POLICIES.find((p) => p === match?.[2]);
      if (!match?.[1] || !policy) {
        ctx.addIssue({
          code: "custom",
          message: `"${part.trim()}" is not label=policy with policy ${NETWORK_POLICIES.join(" or ")}`,
        });
        return z.NEVER;
      }
      policies[match[1]] = policy;
    }
    return policies;
  });
