export { DEBUG_SSH_FLAG, type DebugSession, DebugSshKeeper, type DebugSshPolicy } from "./debug-ssh.ts";
export { ORCHESTRATOR_VERSION, type Orchestrator, type OrchestratorDeps, startOrchestrator } from "./orchestrator.ts";
