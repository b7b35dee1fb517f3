export { type GitHubScope, parseGitHubUrl } from "./client/github-url.ts";
export { clientAssertion, RunnerTokenSource } from "./client/oauth.ts";
export { expandRoute, LOCATIONS, negotiateVersion } from "./client/vss-client.ts";
export { type GitHubRunnerConfig, githubRunnerConfigSchema } from "./config.ts";
export { type Daemon, type DaemonEnd, type DaemonOptions, startDaemon } from "./daemon.ts";
export { GitHubRunnerError, type GitHubRunnerErrorCode, HttpStatusError, HttpUnreachableError } from "./errors.ts";
export { decryptBody, sessionAesKey } from "./poll/message-crypto.ts";
export { decodeJitConfig } from "./registration/jit-config.ts";
export {
  checkLabels,
  fleetLabelOf,
  jitLabelWarning,
  type RegisterOptions,
  type RemoveOptions,
  registerRunner,
  removeRunner,
} from "./registration/registration.ts";
export {
  fromRsaParams,
  generateRunnerKey,
  publicKeyParts,
  publicKeyXml,
  type RsaParams,
  toRsaParams,
} from "./registration/rsa-key.ts";
export {
  CREDENTIALS_FILE,
  RSA_PARAMS_FILE,
  type RunnerCredentials,
  type RunnerRegistration,
  type RunnerSettings,
  readRegistration,
  SETTINGS_FILE,
} from "./registration/runner-files.ts";
export { JobLog, type StepRecord, type TaskResult } from "./report/job-log.ts";
export { contextDataToJson } from "./run/context-data.ts";
export { JobMasker } from "./run/job-masker.ts";
export { type JobMessage, parseJobMessage, secretsOf } from "./run/job-message.ts";
export { type JobPlan, planJob, type StepInfo } from "./run/job-plan.ts";
export { type GitHubJobOptions, type JobTimings, runGitHubJob } from "./run/job-relay.ts";
export { mappingEntries, readToken, type TokenValue } from "./run/template-token.ts";
export { RUNNER_VERSION } from "./version.ts";
