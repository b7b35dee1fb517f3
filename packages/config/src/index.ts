export { capacitySchema } from "./capacity.ts";
export { ConfigError, envNameOf, loadConfig } from "./load.ts";
export { effectiveMaxVms, type OrchestratorConfig, orchestratorConfigSchema } from "./orchestrator.ts";
