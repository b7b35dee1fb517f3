export { DEBUG_SSH_FLAG, type DebugSession, DebugSshKeeper, type DebugSshPolicy } from "./debug-ssh.ts";
export { type HostJobCache, startHostJobCache } from "./host-job-cache.ts";
export { createOrchestratorMetrics, type MetricsSources, type OrchestratorMetrics } from "./metrics.ts";
export { ORCHESTRATOR_VERSION, type Orchestrator, type OrchestratorDeps, startOrchestrator } from "./orchestrator.ts";
export type { PoolSize } from "./warm-pool.ts";
