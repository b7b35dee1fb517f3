export { type BhyveConfig, bhyveConfigSchema } from "./bhyve.ts";
export { capacitySchema } from "./capacity.ts";
export { ConfigError, envNameOf, loadConfig } from "./load.ts";
export { NETWORK_POLICIES, type NetworkPolicyName, networkPolicySchema } from "./network-policy.ts";
export {
  effectiveLeaseMs,
  effectiveMaxVms,
  jobTakingOf,
  LEASE_HEARTBEATS,
  type OrchestratorConfig,
  orchestratorConfigSchema,
} from "./orchestrator.ts";
