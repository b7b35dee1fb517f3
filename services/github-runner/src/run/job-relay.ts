import type { Bus } from "@solstice/bus";
import { addDebugAccess, Backoff, type OwnerEvents, runFleetJob, sleep } from "@solstice/forge-relay";
import {
  ActionArchiveSchema,
  actionTokenContext,
  create,
  type FleetKeyring,
  Outcome,
  timestampDate,
} from "@solstice/protocol";
import type { Logger } from "pino";
import { fixedBearer, LOCATIONS, VssClient } from "../client/vss-client.ts";
import { GitHubRunnerError, HttpStatusError } from "../errors.ts";
import { completeJob, renewJob } from "../poll/run-service.ts";
import type { FeedbackChannel } from "../report/feedback-channel.ts";
import { JobLog, type TaskResult } from "../report/job-log.ts";
import { JobReporter } from "../report/job-reporter.ts";
import { ResultsChannel, stepResultsOf } from "../report/results-channel.ts";
import { TimelineChannel } from "../report/timeline-channel.ts";
import { type ActionDownloadInfo, resolveActionDownloadInfo } from "./action-download-info.ts";
import { holdJobLock } from "./job-lock.ts";
import { JobMasker } from "./job-masker.ts";
import { type JobMessage, maskValuesOf, variable } from "./job-message.ts";
import { type JobPlan, planJob } from "./job-plan.ts";

export interface JobTimings {
  /** How often the timeline and live lines go out. Default 500. */
  reportIntervalMs?: number;
  /** How often the job's lock is renewed. Default 60000. */
  renewIntervalMs?: number;
  /** The lease rule's silence bound. Default 60000. */
  leaseMs?: number;
  /** Attempts before a lost job fails. Default 3. */
  maxAttempts?: number;
  /** How long a job may wait for a host. Default 600000. */
  queueTimeoutMs?: number;
  /** After a cancel, how long to wait for the VM's end. Default 60000. */
  cancelGraceMs?: number;
  /** How long the final report and completion keep retrying. Default 300000. */
  finalDeadlineMs?: number;
}

export interface GitHubJobOptions {
  message: JobMessage;
  flow: "broker" | "classic";
  /** Classic only: the pipelines service with the runner's token (lock renewal, legacy finish) and the pool. */
  tenant?: { vss: VssClient; poolId: number };
  bus: Pick<Bus, "publishJob" | "publishControl">;
  events: OwnerEvents;
  owner: string;
  fleetLabel: string;
  runnerName: string;
  keyring?: FleetKeyring;
  log: Logger;
  timings?: JobTimings;
  /** Aborted when GitHub cancels the job (a JobCancellation message). */
  cancel: AbortSignal;
}

const RESULTS: Record<Outcome, TaskResult> = {
  [Outcome.UNSPECIFIED]: "failed",
  [Outcome.SUCCESS]: "succeeded",
  [Outcome.FAILURE]: "failed",
  [Outcome.CANCELLED]: "canceled",
  [Outcome.SKIPPED]: "skipped",
};

/** Retries a final call until it succeeds, the service says it never will (401/404), or the deadline passes. */
async function finalCall(
  what: string,
  call: () => Promise<unknown>,
  deadlineMs: number,
  log: Logger,
): Promise<boolean> {
  const deadline = Date.now() + deadlineMs;
  const backoff = new Backoff(500, 15_000);
  for (;;) {
    try {
      await call();
      return true;
    } catch (error) {
      if (error instanceof HttpStatusError && (error.status === 401 || error.status === 404)) {
        log.error({ err: error.message }, `${what} refused; the job is lost to GitHub`);
        return false;
      }
      if (Date.now() > deadline) {
        log.error({ err: (error as Error).message }, `${what} failed until the deadline`);
        return false;
      }
      log.warn({ err: (error as Error).message }, `${what} failed; retrying`);
      await sleep(backoff.next());
    }
  }
}

/**
 * Resolves the job's actions through GitHub (its action download info) and puts each archive in
 * the JobRequest, its download token sealed with the fleet key for the VM host, which downloads
 * and caches it (decision 0005). False, with the reason in GitHub's log, when that fails.
 */
async function resolveActions(
  plan: Extract<JobPlan, { ok: true }>,
  opts: GitHubJobOptions,
  masker: JobMasker,
  system: (text: string) => void,
): Promise<boolean> {
  if (plan.actions.length === 0) return true;
  system("Getting action download info");
  let infos: ActionDownloadInfo[];
  try {
    infos = await resolveActionDownloadInfo(opts.message, opts.flow, plan.actions, opts.cancel);
  } catch (error) {
    opts.log.warn({ err: (error as Error).message }, "resolving the job's actions failed");
    system(`could not resolve the job's actions: ${(error as Error).message}`);
    return false;
  }
  const request = plan.request;
  // As GitHub's runner does: a download token is masked wherever it might show.
  for (const info of infos) if (info.token !== undefined) masker.add(info.token);
  for (const info of infos) {
    if (info.token !== undefined && !opts.keyring) {
      system(
        `action ${info.reference} comes with a download token, which travels only sealed: give the github-runner the fleet key (SOLSTICE_FLEET_KEYS_FILE)`,
      );
      return false;
    }
    request.actionArchives.push(
      create(ActionArchiveSchema, {
        reference: info.reference,
        resolvedRepository: info.resolvedNameWithOwner,
        commitSha: info.resolvedSha,
        tarballUrl: info.tarballUrl,
        ...(info.token !== undefined && opts.keyring
          ? { token: opts.keyring.seal(info.token, actionTokenContext(request.jobId, info.reference)) }
          : {}),
      }),
    );
    system(`Download action repository '${info.reference}' (SHA:${info.resolvedSha}) on the VM host`);
  }
  return true;
}

/**
 * Runs one GitHub job to its end: holds its lock, plans it (refusing at once, with every reason
 * in GitHub's log, what Solstice cannot run), runs it in the fleet, relays its events as timeline
 * records and log lines (masked), and completes it with its conclusion, outputs and step results.
 * Never throws; resolves with the conclusion reported, or "abandoned" when GitHub took the job back.
 */
export async function runGitHubJob(opts: GitHubJobOptions): Promise<TaskResult> {
  const { message, log } = opts;
  const timings = opts.timings ?? {};
  const finalDeadlineMs = timings.finalDeadlineMs ?? 300_000;
  const jobToken = message.systemVss.token;
  const renew =
    opts.flow === "broker"
      ? (signal: AbortSignal) =>
          renewJob(message.systemVss.url, jobToken, { planId: message.plan.planId, jobId: message.jobId }, signal)
      : async (signal: AbortSignal) => {
          if (!opts.tenant) throw new GitHubRunnerError("protocol_error", "a classic job without the runner's service");
          const { vss, poolId } = opts.tenant;
          await vss.call({
            method: "PATCH",
            location: LOCATIONS.jobRequests,
            apiVersion: "5.1-preview.1",
            route: { poolId, requestId: message.requestId },
            query: { lockToken: "00000000-0000-0000-0000-000000000000" },
            json: { requestId: message.requestId, lockedUntil: null },
            signal,
          });
          return undefined;
        };
  const lock = holdJobLock({ renew, log, ...(timings.renewIntervalMs ? { intervalMs: timings.renewIntervalMs } : {}) });
  try {
    await lock.ready;
  } catch (error) {
    log.error({ err: (error as Error).message }, "the job's first renewal failed; not starting it");
    lock.stop();
    return "abandoned";
  }

  const masks = maskValuesOf(message);
  const masker = new JobMasker(masks.values, masks.patterns);
  const plan = planJob(message, {
    owner: opts.owner,
    fleetLabel: opts.fleetLabel,
    ...(opts.keyring ? { keyring: opts.keyring } : {}),
  });
  const jobLog = new JobLog({ jobId: message.jobId, jobName: message.jobDisplayName, steps: plan.steps, masker });
  let channel: FeedbackChannel;
  if (opts.flow === "broker") {
    const resultsUrl = variable(message, "system.github.results_endpoint") ?? "";
    channel = new ResultsChannel({
      resultsUrl,
      jobToken,
      planId: message.plan.planId,
      jobId: message.jobId,
      feedStreamUrl: message.systemVss.feedStreamUrl,
      log,
    });
  } else {
    channel = new TimelineChannel({
      systemVssUrl: message.systemVss.url,
      jobToken,
      scopeIdentifier: message.plan.scopeIdentifier,
      hubName: message.plan.planType,
      planId: message.plan.planId,
      timelineId: message.timelineId,
      jobId: message.jobId,
    });
  }
  const reporter = new JobReporter({
    log: jobLog,
    channel,
    logger: log,
    finalDeadlineMs,
    ...(timings.reportIntervalMs ? { intervalMs: timings.reportIntervalMs } : {}),
  });
  const system = (text: string) => jobLog.line(-1, `[solstice] ${text}`);
  system(`runner ${opts.runnerName} took job "${message.jobDisplayName}" (Solstice CI, label ${opts.fleetLabel})`);

  let result: TaskResult;
  let outputs: Record<string, { value: string; isSecret: boolean }> = {};
  if (!plan.ok) {
    system("this job cannot run on Solstice CI:");
    for (const problem of plan.problems) system(`  ${problem}`);
    system("the job was not started; no VM was booted");
    result = "failed";
  } else if (!(await resolveActions(plan, opts, masker, system))) {
    system("the job was not started; no VM was booted");
    result = opts.cancel.aborted ? "canceled" : "failed";
  } else {
    const request = plan.request;
    log.info({ job_id: request.jobId, github_job_id: message.jobId }, "running GitHub job in the fleet");
    const debugNote = await addDebugAccess(request, "github", log, opts.cancel);
    if (debugNote) system(debugNote);
    const signal = AbortSignal.any([opts.cancel, lock.lost]);
    const noticed = new Set<string>();
    const fleet = await runFleetJob({
      request,
      bus: opts.bus,
      events: opts.events,
      log,
      signal,
      ...(timings.leaseMs ? { leaseMs: timings.leaseMs } : {}),
      ...(timings.maxAttempts ? { maxAttempts: timings.maxAttempts } : {}),
      ...(timings.queueTimeoutMs ? { queueTimeoutMs: timings.queueTimeoutMs } : {}),
      ...(timings.cancelGraceMs ? { cancelGraceMs: timings.cancelGraceMs } : {}),
      onNotice: (text) => {
        noticed.add(text);
        system(text);
      },
      onEvent: (event) => {
        const time = event.time ? timestampDate(event.time) : new Date();
        switch (event.body.case) {
          case "accepted":
            system(`job ${request.jobId} accepted by host ${event.body.value.host}`);
            break;
          case "stepStarted":
            jobLog.stepStarted(event.body.value.index, time);
            break;
          case "log":
            for (const line of event.body.value.lines) {
              jobLog.line(event.body.value.stepIndex, line.text, line.time ? timestampDate(line.time) : time);
            }
            break;
          case "stepFinished":
            jobLog.stepFinished(event.body.value.index, RESULTS[event.body.value.conclusion], time);
            break;
          default:
            break;
        }
      },
    });
    if (fleet.reason && ![...noticed].some((n) => n.startsWith(fleet.reason))) system(fleet.reason);
    if (lock.lost.aborted) {
      log.warn({ reason: String(lock.lost.reason) }, "GitHub took the job back; not completing it");
      await reporter.abandon();
      lock.stop();
      return "abandoned";
    }
    result = opts.cancel.aborted ? "canceled" : RESULTS[fleet.result];
    for (const [name, value] of Object.entries(fleet.outputs)) {
      if (masker.mask(value) !== value) {
        system(`output ${name} was not sent: it contains a secret`);
        continue;
      }
      outputs[name] = { value, isSecret: false };
    }
    if (result !== "succeeded") outputs = {};
  }

  jobLog.finish(result);
  await reporter.finish();
  const steps = jobLog.records;
  let completed: boolean;
  if (opts.flow === "broker") {
    completed = await finalCall(
      "completejob",
      () =>
        completeJob(message.systemVss.url, jobToken, {
          planId: message.plan.planId,
          jobId: message.jobId,
          conclusion: result,
          outputs,
          stepResults: stepResultsOf(steps),
          annotations: [],
          environmentUrl: null,
          billingOwnerId: message.billingOwnerId,
          telemetry: [],
        }),
      finalDeadlineMs,
      log,
    );
  } else if (message.plan.version >= 8) {
    const jobVss = new VssClient(message.systemVss.url, fixedBearer(jobToken));
    completed = await finalCall(
      "JobCompleted plan event",
      () =>
        jobVss.call({
          method: "POST",
          location: LOCATIONS.planEvents,
          apiVersion: "2.0-preview.1",
          route: {
            scopeIdentifier: message.plan.scopeIdentifier,
            hubName: message.plan.planType,
            planId: message.plan.planId,
          },
          json: { name: "JobCompleted", jobId: message.jobId, requestId: message.requestId, result, outputs },
        }),
      finalDeadlineMs,
      log,
    );
  } else {
    const tenant = opts.tenant;
    completed =
      tenant !== undefined &&
      (await finalCall(
        "job request finish",
        () =>
          tenant.vss.call({
            method: "PATCH",
            location: LOCATIONS.jobRequests,
            apiVersion: "5.1-preview.1",
            route: { poolId: tenant.poolId, requestId: message.requestId },
            query: { lockToken: "00000000-0000-0000-0000-000000000000" },
            json: { requestId: message.requestId, finishTime: new Date().toISOString(), result },
          }),
        finalDeadlineMs,
        log,
      ));
  }
  lock.stop();
  log.info({ conclusion: result, completed }, "GitHub job finished");
  return result;
}
