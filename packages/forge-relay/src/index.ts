export { Backoff, sleep } from "./backoff.ts";
export { ask, commaList, exitOnCliError, flagOrPrompt } from "./cli-input.ts";
export { addDebugAccess, DEBUG_SSH_FLAG } from "./debug-access.ts";
export { type FleetJobOptions, type FleetJobResult, runFleetJob } from "./fleet-job.ts";
export { followOwnerEvents, type OwnerEvents } from "./owner-events.ts";
export { parseLabel, type RunnerLabel } from "./runner-label.ts";
