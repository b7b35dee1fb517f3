import { type JobRequest, JobSource, type PlannedStep } from "@solstice/protocol";
import type { RunnerFileVariable } from "./runner-files.ts";

/** Where the job's repository lives in the guest: `~/workspace/<repository name>`. */
export function workspacePath(home: string, job: JobRequest): string {
  const name = job.repository?.fullName.split("/").pop() || "workspace";
  return `${home}/workspace/${name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
}

/** What the job learns about its guest before the first step. */
export interface GuestFacts {
  readonly home: string;
  readonly workspace: string;
  /** `runner.os` / RUNNER_OS: Linux, macOS, Windows as GitHub names them; other kernels by their own name. */
  readonly os: string;
  /** `runner.arch` / RUNNER_ARCH: X86, X64, ARM, ARM64. */
  readonly arch: string;
  readonly runnerTemp: string;
  readonly toolCache: string;
}

/** The name steps and expressions see for this runner (RUNNER_NAME, runner.name). */
export const RUNNER_NAME = "solstice";

/** `uname -s` and `uname -m` as Actions names them. */
export function guestPlatform(kernel: string, machine: string): { os: string; arch: string } {
  const os = kernel === "Darwin" ? "macOS" : kernel || "Linux";
  const arches: Record<string, string> = {
    x86_64: "X64",
    amd64: "X64",
    i386: "X86",
    i686: "X86",
    aarch64: "ARM64",
    arm64: "ARM64",
    armv7l: "ARM",
  };
  return { os, arch: arches[machine] ?? (machine.toUpperCase() || "X64") };
}

/**
 * GitHub's variables, or Forgejo's as well. A Forgejo runner sets every GITHUB_* variable also as
 * FORGEJO_* and marks itself with FORGEJO_ACTIONS and GITEA_ACTIONS; a workflow under .forgejo/ or
 * .gitea/ run locally gets them too, with FORGEJO_ACTIONS=false as `forgejo-runner exec` does.
 */
export type ForgeFlavor = "github" | "forgejo";

export function forgeFlavor(job: JobRequest): ForgeFlavor {
  return job.source === JobSource.FORGEJO || /^\.(forgejo|gitea)\//.test(job.workflowPath) ? "forgejo" : "github";
}

/** The github context the job was planned with, as an object (empty when none was sent). */
export function plannedGithubContext(job: JobRequest): Record<string, unknown> {
  const json = job.contexts?.githubJson ?? "";
  if (json === "") return {};
  try {
    const parsed = JSON.parse(json) as unknown;
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    throw new Error("the job's github context is not valid JSON; the planner that sent it is broken");
  }
}

function text(value: unknown): string {
  if (typeof value === "string") return value;
  return typeof value === "number" || typeof value === "boolean" ? String(value) : "";
}

/** Where GITHUB_EVENT_PATH points: the event payload, written into the guest before the first step. */
export function eventPath(guest: Pick<GuestFacts, "runnerTemp">): string {
  return `${guest.runnerTemp}/_github_workflow/event.json`;
}

/** Debug logging is on when the ACTIONS_RUNNER_DEBUG or ACTIONS_STEP_DEBUG variable is true, as on GitHub. */
export function debugEnabled(vars: unknown): boolean {
  if (vars === null || typeof vars !== "object") return false;
  const v = vars as Record<string, unknown>;
  return text(v.ACTIONS_RUNNER_DEBUG) === "true" || text(v.ACTIONS_STEP_DEBUG) === "true";
}

/**
 * The github context as steps see it: what the job was planned with, completed with what only the
 * runner knows (workspace, job) and what the job request carries when the forge did not say.
 */
export function runtimeGithubContext(job: JobRequest, guest: GuestFacts): Record<string, unknown> {
  const planned = plannedGithubContext(job);
  const repo = job.repository;
  const server = text(planned.server_url) || serverOf(repo?.url ?? "") || "https://github.com";
  const ref = text(planned.ref) || repo?.ref || "";
  const repository = text(planned.repository) || repo?.fullName || "";
  const flavor = forgeFlavor(job);
  return {
    ...planned,
    event: planned.event ?? {},
    event_name: text(planned.event_name),
    event_path: eventPath(guest),
    job: job.workflowJobId,
    workspace: guest.workspace,
    repository,
    repository_owner: text(planned.repository_owner) || repository.split("/")[0] || "",
    sha: text(planned.sha) || repo?.commitSha || "",
    ref,
    ref_name: text(planned.ref_name) || ref.replace(/^refs\/(heads|tags)\//, "").replace(/^refs\/pull\//, ""),
    ref_type: text(planned.ref_type) || (ref.startsWith("refs/tags/") ? "tag" : ref === "" ? "" : "branch"),
    base_ref: text(planned.base_ref),
    head_ref: text(planned.head_ref),
    server_url: server,
    api_url: text(planned.api_url) || apiUrl(server, flavor),
    ...(flavor === "github" ? { graphql_url: text(planned.graphql_url) || graphqlUrl(server) } : {}),
    workflow: text(planned.workflow) || job.workflowPath,
    run_id: text(planned.run_id) || runIdOf(job.jobId),
    run_number: text(planned.run_number) || "1",
    run_attempt: text(planned.run_attempt) || String(job.attempt),
    actor: text(planned.actor),
    retention_days: text(planned.retention_days),
  };
}

function serverOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "";
  }
}

function apiUrl(server: string, flavor: ForgeFlavor): string {
  if (flavor === "forgejo") return `${server}/api/v1`;
  return server === "https://github.com" ? "https://api.github.com" : `${server}/api/v3`;
}

function graphqlUrl(server: string): string {
  return server === "https://github.com" ? "https://api.github.com/graphql" : `${server}/api/graphql`;
}

/** A forge gives run ids as numbers; a job with none gets a stable number from its uuid. */
function runIdOf(jobId: string): string {
  const hex = jobId.replace(/[^0-9a-f]/gi, "").slice(0, 12);
  return hex === "" ? "0" : String(Number.parseInt(hex, 16));
}

/** The github context properties that become GITHUB_<NAME> variables when the context has them. */
const GITHUB_VARIABLES = [
  "actor",
  "actor_id",
  "api_url",
  "base_ref",
  "event_name",
  "event_path",
  "graphql_url",
  "head_ref",
  "job",
  "ref",
  "ref_name",
  "ref_protected",
  "ref_type",
  "repository",
  "repository_id",
  "repository_owner",
  "repository_owner_id",
  "retention_days",
  "run_attempt",
  "run_id",
  "run_number",
  "server_url",
  "sha",
  "triggering_actor",
  "workflow",
  "workflow_ref",
  "workflow_sha",
  "workspace",
];

/**
 * The variables every step of the job gets from the runner: GITHUB_*, RUNNER_* (and FORGEJO_* and
 * GITEA_ACTIONS for a Forgejo job), and Solstice's job id and attempt. The workflow cannot
 * override them, as on GitHub.
 */
export function runnerVariables(
  job: JobRequest,
  guest: GuestFacts,
  github: Record<string, unknown>,
  debug: boolean,
): Record<string, string> {
  const vars: Record<string, string> = { GITHUB_ACTIONS: "true" };
  for (const name of GITHUB_VARIABLES) {
    if (name in github) vars[`GITHUB_${name.toUpperCase()}`] = text(github[name]);
  }
  Object.assign(vars, {
    RUNNER_OS: guest.os,
    RUNNER_ARCH: guest.arch,
    RUNNER_NAME,
    RUNNER_ENVIRONMENT: "self-hosted",
    RUNNER_TEMP: guest.runnerTemp,
    RUNNER_TOOL_CACHE: guest.toolCache,
    ...(debug ? { RUNNER_DEBUG: "1" } : {}),
    SOLSTICE_JOB_ID: job.jobId,
    SOLSTICE_ATTEMPT: String(job.attempt),
  });
  if (forgeFlavor(job) === "forgejo") {
    for (const [name, value] of Object.entries(vars)) {
      if (name.startsWith("GITHUB_")) vars[`FORGEJO_${name.slice("GITHUB_".length)}`] = value;
    }
    const fromForge = job.source === JobSource.FORGEJO;
    vars.FORGEJO_ACTIONS = String(fromForge);
    if (fromForge) vars.GITEA_ACTIONS = "true";
  }
  return vars;
}

/** The runner context of expressions, matching the RUNNER_* variables. */
export function runnerContext(guest: GuestFacts, debug: boolean): Record<string, string> {
  return {
    os: guest.os,
    arch: guest.arch,
    name: RUNNER_NAME,
    environment: "self-hosted",
    temp: guest.runnerTemp,
    tool_cache: guest.toolCache,
    ...(debug ? { debug: "1" } : {}),
  };
}

/**
 * GITHUB_ACTION: the step's id; without one, GitHub names a script `__run` (then `__run_2`…) and
 * the checkout action `__actions_checkout`, while a Forgejo runner uses the step's number.
 */
export function stepActionName(job: JobRequest, step: PlannedStep): string {
  if (step.id !== "") return step.id;
  if (forgeFlavor(job) === "forgejo") return String(step.index);
  const base = actionNameBase(step);
  const earlier = job.steps.filter((s) => s.index < step.index && s.id === "" && actionNameBase(s) === base).length;
  return earlier === 0 ? base : `${base}_${earlier + 1}`;
}

/** GitHub names a step without id after what it runs: `__run`, `__actions_checkout`, `__owner_name`. */
function actionNameBase(step: PlannedStep): string {
  if (step.action.case === "checkout") return "__actions_checkout";
  if (step.action.case !== "uses") return "__run";
  const [owner = "", name = ""] =
    step.action.value.uses
      .replace(/^https?:\/\/[^/]+\//i, "")
      .split("@")[0]
      ?.split("/") ?? [];
  return `__${owner}_${name}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

/** The variables that change from step to step: the step's name and its runner files. */
export function stepVariables(
  job: JobRequest,
  step: PlannedStep,
  files: Record<RunnerFileVariable, string>,
): Record<string, string> {
  const vars: Record<string, string> = { GITHUB_ACTION: stepActionName(job, step), ...files };
  if (forgeFlavor(job) === "forgejo") {
    for (const [name, value] of Object.entries({ ...vars })) vars[`FORGEJO_${name.slice("GITHUB_".length)}`] = value;
  }
  return vars;
}
