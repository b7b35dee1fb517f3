import { type JobRequest, JobSource } from "@solstice/protocol";
import type { JobDetails, JobSourceName } from "./job-store.ts";

const SOURCE_NAMES: Partial<Record<JobSource, JobSourceName>> = {
  [JobSource.FORGEJO]: "forgejo",
  [JobSource.GITHUB]: "github",
};

/** What a job's row records about it, taken from the request that was published. */
export function jobDetailsOf(job: JobRequest): JobDetails {
  return {
    source: SOURCE_NAMES[job.source] ?? "manual",
    owner: job.owner,
    label: job.runsOn,
    repoUrl: job.repository?.url ?? "",
    repoFullName: job.repository?.fullName ?? "",
    commitSha: job.repository?.commitSha ?? "",
    ref: job.repository?.ref ?? "",
    workflowPath: job.workflowPath,
    jobKey: job.workflowJobId,
    jobName: job.jobName,
    steps: job.steps.map((s) => ({ index: s.index, name: s.name })),
  };
}
