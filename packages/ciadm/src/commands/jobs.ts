import type { JobRecord, JobState } from "@solstice/db";
import { type Command, Option } from "commander";
import type { Logger } from "pino";
import { CliError, type FleetOptions, withFleetOptions, withStore } from "../fleet-access.ts";
import { duration, formatTable } from "../table.ts";
import type { Terminal } from "../terminal.ts";

const STATES: JobState[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface JobsOptions extends FleetOptions {
  state?: JobState;
  label?: string;
  host?: string;
  repo?: string;
  limit: number;
  json: boolean;
}

/** `ciadm jobs` and `ciadm job show ID`: what the fleet ran and runs, from PostgreSQL. */
export function registerJobs(program: Command, term: Terminal, logger: () => Logger): void {
  withFleetOptions(
    program
      .command("jobs")
      .description("list jobs, newest first")
      .addOption(new Option("--state <state>", "only jobs in this state").choices(STATES))
      .option("--label <label>", "only jobs for this runs-on label")
      .option("--host <host>", "only jobs that ran on this host")
      .option("--repo <repo>", "only jobs of this repository (owner/name or URL)")
      .option("--limit <n>", "at most this many (≤ 1000)", Number, 50)
      .option("--json", "machine-readable output", false),
    { db: true },
  ).action(async (opts: JobsOptions) => {
    const jobs = await withStore(opts, logger(), (store) =>
      store.listJobs({
        ...(opts.state ? { state: opts.state } : {}),
        ...(opts.label ? { label: opts.label } : {}),
        ...(opts.host ? { host: opts.host } : {}),
        ...(opts.repo ? { repo: opts.repo } : {}),
        limit: opts.limit,
      }),
    );
    if (opts.json) {
      term.out(`${JSON.stringify(jobs.map(jobJson), null, 2)}\n`);
      return;
    }
    if (jobs.length === 0) {
      term.out("no jobs\n");
      return;
    }
    term.out(
      formatTable(
        ["JOB ID", "STATE", "LABEL", "HOST", "REPO", "NAME", "ATTEMPT", "CREATED", "DURATION"],
        jobs.map((j) => [
          j.jobId,
          j.state,
          j.label,
          j.hostId ?? "-",
          j.repoFullName || "-",
          j.jobName,
          String(j.attempt),
          j.createdAt.toISOString().replace(/\.\d+Z$/, "Z"),
          duration(j.startedAt, j.finishedAt),
        ]),
      ),
    );
  });

  withFleetOptions(
    program
      .command("job")
      .description("one job")
      .command("show")
      .description("a job's state, host, attempts, steps and times")
      .argument("<id>", "the job id (a uuid, as `ciadm jobs` shows it)")
      .option("--json", "machine-readable output", false),
    { db: true },
  ).action(async (id: string, opts: FleetOptions & { json: boolean }) => {
    if (!UUID.test(id))
      throw new CliError("invalid_job_id", `"${id}" is not a job id`, "job ids are uuids; list them with `ciadm jobs`");
    const job = await withStore(opts, logger(), (store) => store.getJob(id));
    if (!job) throw new CliError("unknown_job", `no job ${id}`, "list jobs with `ciadm jobs`");
    if (opts.json) {
      term.out(`${JSON.stringify(jobJson(job), null, 2)}\n`);
      return;
    }
    const field = (name: string, value: string) => `${`${name}:`.padEnd(11)} ${value}\n`;
    term.out(
      field("job", `${job.jobName} (${job.jobKey} in ${job.workflowPath})`) +
        field("id", job.jobId) +
        field("state", job.reason ? `${job.state}: ${job.reason}` : job.state) +
        field("attempt", String(job.attempt)) +
        field("label", job.label) +
        field("host", job.hostId ?? "-") +
        field("repo", `${job.repoFullName || "-"}${job.commitSha ? ` @ ${job.commitSha.slice(0, 12)}` : ""}`) +
        field("source", `${job.source}, owner ${job.owner}`) +
        field("queued", job.queuedAt.toISOString()) +
        field("started", job.startedAt?.toISOString() ?? "-") +
        field("finished", job.finishedAt?.toISOString() ?? "-") +
        field("duration", duration(job.startedAt, job.finishedAt) || "-") +
        "\n",
    );
    term.out(
      formatTable(
        ["#", "STEP", "STATE", "CONCLUSION", "EXIT", "DURATION"],
        job.steps.map((s) => [
          String(s.index + 1),
          s.name,
          s.state,
          s.conclusion ?? "-",
          s.exitCode === null ? "-" : String(s.exitCode),
          duration(s.startedAt, s.finishedAt),
        ]),
      ),
    );
  });
}

function jobJson(job: JobRecord) {
  return {
    id: job.jobId,
    attempt: job.attempt,
    state: job.state,
    reason: job.reason,
    label: job.label,
    host: job.hostId,
    source: job.source,
    owner: job.owner,
    repo: job.repoFullName,
    repoUrl: job.repoUrl,
    commit: job.commitSha,
    ref: job.ref,
    workflow: job.workflowPath,
    jobKey: job.jobKey,
    name: job.jobName,
    createdAt: job.createdAt,
    queuedAt: job.queuedAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    steps: job.steps,
  };
}
