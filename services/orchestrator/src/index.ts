export { ORCHESTRATOR_VERSION, type Orchestrator, type OrchestratorDeps, startOrchestrator } from "./orchestrator.ts";
