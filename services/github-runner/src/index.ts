export { type GitHubRunnerConfig, githubRunnerConfigSchema } from "./config.ts";
export { contextDataToJson } from "./context-data.ts";
export { type Daemon, type DaemonEnd, type DaemonOptions, startDaemon } from "./daemon.ts";
export { GitHubRunnerError, type GitHubRunnerErrorCode, HttpStatusError, HttpUnreachableError } from "./errors.ts";
export { type GitHubScope, parseGitHubUrl } from "./github-url.ts";
export { decodeJitConfig } from "./jit-config.ts";
export { JobLog, type StepRecord, type TaskResult } from "./job-log.ts";
export { JobMasker } from "./job-masker.ts";
export { type JobMessage, parseJobMessage, secretsOf } from "./job-message.ts";
export { type JobPlan, planJob, type StepInfo } from "./job-plan.ts";
export { type GitHubJobOptions, type JobTimings, runGitHubJob } from "./job-relay.ts";
export { decryptBody, sessionAesKey } from "./message-crypto.ts";
export { clientAssertion, RunnerTokenSource } from "./oauth.ts";
export { checkLabels, type RegisterOptions, type RemoveOptions, registerRunner, removeRunner } from "./registration.ts";
export {
  fromRsaParams,
  generateRunnerKey,
  publicKeyParts,
  publicKeyXml,
  type RsaParams,
  toRsaParams,
} from "./rsa-key.ts";
export {
  CREDENTIALS_FILE,
  RSA_PARAMS_FILE,
  type RunnerCredentials,
  type RunnerRegistration,
  type RunnerSettings,
  readRegistration,
  SETTINGS_FILE,
} from "./runner-files.ts";
export { mappingEntries, readToken, type TokenValue } from "./template-token.ts";
export { RUNNER_VERSION } from "./version.ts";
export { expandRoute, LOCATIONS, negotiateVersion } from "./vss-client.ts";
