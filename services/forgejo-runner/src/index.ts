export { Backoff, sleep } from "./backoff.ts";
export { type ForgejoRunnerConfig, forgejoRunnerConfigSchema } from "./config.ts";
export { type Daemon, type DaemonOptions, startDaemon } from "./daemon.ts";
export { actionsBaseUrl, createForgeClient, type ForgeClient, type ForgeClientOptions } from "./forge-client.ts";
export type { PingRequest, PingResponse } from "./gen/ping/v1/messages_pb.ts";
export { PingService } from "./gen/ping/v1/services_pb.ts";
export {
  type LogRow,
  LogRowSchema,
  Result,
  type Runner,
  RunnerSchema,
  type StepState,
  StepStateSchema,
  type Task,
  TaskSchema,
  type TaskState,
  TaskStateSchema,
} from "./gen/runner/v1/messages_pb.ts";
export { RunnerService } from "./gen/runner/v1/services_pb.ts";
export { parseLabel, type RunnerLabel } from "./labels.ts";
export { RegisterError, type RegisterOptions, registerRunner } from "./register.ts";
export { type RunnerFile, RunnerFileError, readRunnerFile, runnerFileSchema, writeRunnerFile } from "./runner-file.ts";
export { relayTask, type TaskRelayOptions } from "./task-relay.ts";
export { TaskReporter, type TaskReporterOptions } from "./task-reporter.ts";
export { RUNNER_VERSION } from "./version.ts";
