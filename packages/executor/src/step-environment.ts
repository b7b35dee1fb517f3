import type { JobRequest } from "@solstice/protocol";

/** Where the job's repository lives in the guest: `~/workspace/<repository name>`. */
export function workspacePath(home: string, job: JobRequest): string {
  const name = job.repository?.fullName.split("/").pop() || "workspace";
  return `${home}/workspace/${name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
}

/**
 * The variables every step sees before the workflow's own env, as on GitHub and Forgejo
 * runners; the workflow's env (already merged workflow < job < step) overrides them.
 */
export function defaultStepEnvironment(job: JobRequest, workspace: string, home: string): Record<string, string> {
  const repo = job.repository;
  return {
    CI: "true",
    HOME: home,
    GITHUB_ACTIONS: "true",
    GITHUB_WORKSPACE: workspace,
    GITHUB_REPOSITORY: repo?.fullName ?? "",
    GITHUB_SHA: repo?.commitSha ?? "",
    GITHUB_REF: repo?.ref ?? "",
    GITHUB_JOB: job.workflowJobId,
    GITHUB_WORKFLOW: job.workflowPath,
    RUNNER_OS: "Linux",
    RUNNER_ARCH: "X64",
    RUNNER_TEMP: "/tmp",
    SOLSTICE_JOB_ID: job.jobId,
    SOLSTICE_ATTEMPT: String(job.attempt),
  };
}
