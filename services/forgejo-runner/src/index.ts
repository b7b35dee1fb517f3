export { type ForgejoRunnerConfig, forgejoRunnerConfigSchema } from "./config.ts";
export {
  type CreatedRunnerFile,
  type CreateRunnerFileOptions,
  createRunnerFile,
  uuidFromSecret,
  validateSecret,
} from "./create-runner-file.ts";
export { type Daemon, type DaemonOptions, RunnerUnknownError, startDaemon } from "./daemon.ts";
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
export { RegisterError, type RegisterOptions, registerRunner } from "./register.ts";
export { type RunnerFile, RunnerFileError, readRunnerFile, runnerFileSchema, writeRunnerFile } from "./runner-file.ts";
export { createRunnerMetrics, type RunnerMetrics, type RunnerMetricsSources } from "./runner-metrics.ts";
export { type DecodedTask, decodeTask, TaskPayloadError, taskMasks } from "./task-payload.ts";
export { relayTask, type TaskRelayOptions } from "./task-relay.ts";
export { TaskReporter, type TaskReporterOptions } from "./task-reporter.ts";
export { RUNNER_VERSION } from "./version.ts";
