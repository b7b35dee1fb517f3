import type { Sealed } from "./gen/solstice/v1/common_pb.ts";
import { type JobRequest, JobSource, type PlannedStep } from "./gen/solstice/v1/job_request_pb.ts";

/**
 * The rules a decodable JobRequest must also meet before a database row or a VM sees it. Protobuf
 * accepts any field values (an empty owner, attempt 0, no label); a host that took such a job would
 * record it `running` and then fail to answer anyone, so the consumer refuses it at the door.
 * Returns the first broken rule in words, or undefined for a job that may run.
 */
export function jobRequestProblem(job: JobRequest): string | undefined {
  if (!UUID.test(job.jobId)) return `job_id "${clip(job.jobId)}" is not a uuid`;
  if (job.attempt < 1 || job.attempt > MAX_ATTEMPT) return `attempt ${job.attempt} is not in 1..${MAX_ATTEMPT}`;
  if (!KNOWN_SOURCES.has(job.source)) return `source ${job.source} is not forgejo, github or manual`;
  // The owner is one word of an event routing key (`<owner>.<job_id>`), as packages/bus checks it.
  if (!OWNER.test(job.owner)) return `owner "${clip(job.owner)}" is not 1-100 letters, digits, _ and -`;
  if (!LABEL.test(job.runsOn)) return `runs_on "${clip(job.runsOn)}" is not a label (1-100 letters, digits, ., _, -)`;
  if (job.timeoutSeconds < 1 || job.timeoutSeconds > MAX_TIMEOUT_SECONDS) {
    return `timeout_seconds ${job.timeoutSeconds} is not in 1..${MAX_TIMEOUT_SECONDS}`;
  }
  const url = job.repository?.url ?? "";
  if (url !== "" && !credentialFreeUrl(url)) return "repository.url is not a URL without credentials";
  for (const [name, text] of Object.entries(job.contexts ?? {})) {
    if (name === "$typeName" || typeof text !== "string" || text === "") continue;
    if (!parsesAsJson(text)) return `contexts.${name} is not JSON`;
  }
  const secretNames = new Set<string>();
  for (const secret of job.secrets) {
    if (secret.name === "" || !sealedLooksRight(secret.value)) return `secret "${clip(secret.name)}" is not sealed`;
    secretNames.add(secret.name);
  }
  if (job.checkoutToken && !sealedLooksRight(job.checkoutToken)) return "checkout_token is not sealed";
  if (job.actionsRuntime?.token && !sealedLooksRight(job.actionsRuntime.token)) {
    return "actions_runtime.token is not sealed";
  }
  const missing = unknownSecret(job.secretEnv, secretNames);
  if (missing) return `secret_env ${missing}`;
  for (const archive of job.actionArchives) {
    const which = `action_archives "${clip(archive.reference)}"`;
    if (!/^[0-9a-f]{40}$/.test(archive.commitSha)) return `${which}: commit_sha is not a 40-hex commit`;
    if (!/^https?:/i.test(archive.tarballUrl) || !credentialFreeUrl(archive.tarballUrl)) {
      return `${which}: tarball_url is not an http(s) URL without credentials`;
    }
    if (archive.token && !sealedLooksRight(archive.token)) return `${which}: token is not sealed`;
  }
  if (job.steps.length > MAX_STEPS) return `${job.steps.length} steps; at most ${MAX_STEPS}`;
  for (const [position, step] of job.steps.entries()) {
    const problem = stepProblem(step, position, secretNames);
    if (problem) return `step ${position}: ${problem}`;
  }
  return undefined;
}

function stepProblem(step: PlannedStep, position: number, secretNames: ReadonlySet<string>): string | undefined {
  if (step.index !== position) return `index ${step.index} where ${position} was expected`;
  if (step.action.case === undefined) return "has neither run nor checkout";
  if (step.action.case === "run" && !step.action.value.shell.includes("{0}")) {
    return `shell "${clip(step.action.value.shell)}" has no {0} for the script`;
  }
  if (step.timeoutSeconds > MAX_TIMEOUT_SECONDS) return `timeout_seconds ${step.timeoutSeconds} is too large`;
  const missing = unknownSecret(step.secretEnv, secretNames);
  return missing ? `secret_env ${missing}` : undefined;
}

function unknownSecret(secretEnv: Record<string, string>, secretNames: ReadonlySet<string>): string | undefined {
  for (const [variable, secret] of Object.entries(secretEnv)) {
    if (!secretNames.has(secret)) return `${clip(variable)} names a secret the job does not carry`;
  }
  return undefined;
}

// What FleetKeyring.seal makes: a key id, a 96-bit nonce, ciphertext and a 16-byte tag.
function sealedLooksRight(sealed: Sealed | undefined): boolean {
  return sealed !== undefined && sealed.keyId !== "" && sealed.nonce.length === 12 && sealed.ciphertext.length >= 16;
}

function credentialFreeUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.username === "" && url.password === "";
  } catch {
    return false;
  }
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

// A refused value is quoted for the operator reading the dead-letter queue, never at length.
function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const OWNER = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;
const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const KNOWN_SOURCES = new Set([JobSource.FORGEJO, JobSource.GITHUB, JobSource.MANUAL]);
const MAX_ATTEMPT = 100;
const MAX_STEPS = 1_000;
// GitHub's own bound on a job (35 days for self-hosted runners).
const MAX_TIMEOUT_SECONDS = 35 * 24 * 3600;
