import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Bus, UnroutableLabelError } from "@solstice/bus";
import { addDebugAccess, type OwnerEvents, type RunnerLabel, runFleetJob } from "@solstice/forge-relay";
import {
  ActionsRuntimeSchema,
  checkoutTokenContext,
  create,
  type FleetKeyring,
  type JobEvent,
  type JobRequest,
  JobSource,
  Outcome,
  runtimeTokenContext,
} from "@solstice/protocol";
import { toJobRequest, WorkflowError } from "@solstice/workflow";
import type { Logger } from "pino";
import type { ForgeClient } from "./forge-client.ts";
import { Result, type Task } from "./gen/runner/v1/messages_pb.ts";
import type { RunnerMetrics } from "./runner-metrics.ts";
import { contextText, countSteps, decodeTask, TaskPayloadError, taskContext, taskMasks } from "./task-payload.ts";
import { TaskReporter } from "./task-reporter.ts";

export interface TaskRelayOptions {
  task: Task;
  client: ForgeClient;
  bus: Pick<Bus, "publishJob" | "publishControl" | "queueDepths">;
  /** The daemon's owner subscription, which hands this task's job events over. */
  events: OwnerEvents;
  /** This runner's owner name: the routing key prefix of its jobs' events. */
  owner: string;
  labels: readonly RunnerLabel[];
  /** Seals the secrets and the checkout token into the JobRequest. */
  keyring: Pick<FleetKeyring, "seal">;
  log: Logger;
  reportIntervalMs?: number;
  maxBackoffMs?: number;
  /** The lease rule (see @solstice/forge-relay's runFleetJob). Default 60000. */
  leaseMs?: number;
  /** Attempts in all before a lost job fails the task. Default 3. */
  maxAttempts?: number;
  /** How long the job may wait for a host. Default 600000. */
  queueTimeoutMs?: number;
  /** After a Control.Cancel, how long to wait for the job's end before reporting it cancelled. Default 60000. */
  cancelGraceMs?: number;
  /** Aborting (the runner is shutting down) cancels the job and reports the task cancelled. */
  signal?: AbortSignal;
  metrics?: RunnerMetrics;
}

/** Proto enums share numbers: Outcome and the forge's Result both go SUCCESS=1 … SKIPPED=4. */
function resultOf(outcome: Outcome): Result {
  switch (outcome) {
    case Outcome.SUCCESS:
      return Result.SUCCESS;
    case Outcome.CANCELLED:
      return Result.CANCELLED;
    case Outcome.SKIPPED:
      return Result.SKIPPED;
    default:
      return Result.FAILURE;
  }
}

/**
 * Runs one forge task to its end: plans the single-job payload, publishes the job (secrets and
 * checkout token sealed), supervises it as its owner, relays its events to the forge, and turns a
 * cancel seen by the forge into Control.Cancel. Never throws: every failure ends the task with
 * the reason in its log.
 */
export async function relayTask(opts: TaskRelayOptions): Promise<Result> {
  const { task, log } = opts;
  const context = taskContext(task);
  const ended = new AbortController();
  const reporter = new TaskReporter({
    client: opts.client,
    taskId: task.id,
    stepCount: countSteps(task),
    masks: taskMasks(task),
    log,
    ...(opts.reportIntervalMs ? { reportIntervalMs: opts.reportIntervalMs } : {}),
    ...(opts.maxBackoffMs ? { maxBackoffMs: opts.maxBackoffMs } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    onRemoteEnd: (result) => {
      const reason = result === Result.CANCELLED ? "cancelled in the forge" : "the forge ended the task";
      system(`[solstice] ${reason}; stopping the job`);
      ended.abort(new Error(reason));
    },
  });
  const system = (line: string) => reporter.addLine(-1, new Date(), line);
  const report = async (result: Result, outputs: Record<string, string> = {}) => {
    await reporter.finish(result, outputs);
    opts.metrics?.taskFinished(result);
    return result;
  };
  system(
    `[solstice] received task ${task.id} of job ${contextText(context, "job")}, run ${contextText(context, "run_id")}`,
  );

  let request: JobRequest;
  try {
    request = jobRequestOf(opts);
  } catch (error) {
    if (!(error instanceof TaskPayloadError)) log.error({ err: error }, "task could not be planned");
    for (const line of (error as Error).message.split("\n")) system(`[solstice] ${line}`);
    system("[solstice] the job was not started");
    return report(Result.FAILURE);
  }

  const jobLog = log.child({ job_id: request.jobId });
  const debugNote = await addDebugAccess(request, "forgejo", jobLog, opts.signal);
  if (debugNote) system(`[solstice] ${debugNote}`);
  let attempt = request.attempt;
  let noticed = false;
  const signal = opts.signal ? AbortSignal.any([ended.signal, opts.signal]) : ended.signal;
  const result = await runFleetJob({
    request,
    bus: { publishJob: (job) => publishOrExplain(opts, job), publishControl: (c) => opts.bus.publishControl(c) },
    events: opts.events,
    log: jobLog,
    signal,
    ...(opts.leaseMs ? { leaseMs: opts.leaseMs } : {}),
    ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}),
    ...(opts.queueTimeoutMs ? { queueTimeoutMs: opts.queueTimeoutMs } : {}),
    ...(opts.cancelGraceMs ? { cancelGraceMs: opts.cancelGraceMs } : {}),
    onNotice: (text) => {
      noticed = true;
      system(`[solstice] ${text}`);
    },
    onEvent: (event: JobEvent) => {
      if (event.attempt !== attempt) {
        attempt = event.attempt;
        reporter.newAttempt();
      }
      relayEvent(event, reporter, system);
    },
  });
  if (!result.accepted && !noticed && result.reason) system(`[solstice] ${result.reason}`);
  const final = await report(resultOf(result.result), result.outputs);
  jobLog.info({ result: Result[final], attempt }, "task reported");
  return final;
}

/** The JobRequest of a task: planned, routed to the fleet label, its secrets and token sealed. */
function jobRequestOf(opts: TaskRelayOptions): JobRequest {
  const decoded = decodeTask(opts.task, opts.labels);
  let request: JobRequest;
  try {
    request = toJobRequest(decoded.workflow, decoded.job, {
      source: JobSource.FORGEJO,
      owner: opts.owner,
      repository: {
        url: decoded.serverUrl && decoded.repository ? `${decoded.serverUrl}/${decoded.repository}.git` : "",
        fullName: decoded.repository,
        commitSha: decoded.sha,
        ref: decoded.ref,
      },
      ...(decoded.actionsUrl ? { actionsUrl: decoded.actionsUrl } : {}),
      secrets: { values: { ...opts.task.secrets }, keyring: opts.keyring },
    });
  } catch (error) {
    if (error instanceof WorkflowError) throw new TaskPayloadError("invalid_payload", error.message, { cause: error });
    throw error;
  }
  request.runsOn = decoded.label.fleetLabel;
  // The forge's per-task token lets actions/checkout clone a private repository; it travels sealed.
  if (decoded.token) request.checkoutToken = opts.keyring.seal(decoded.token, checkoutTokenContext(request.jobId));
  // Artifacts (v4 through the results API, older ones through the pipeline URL), as Forgejo's runner
  // sets them for its jobs: the instance's address and the task's runtime token, sealed like a secret.
  const address = opts.client.address;
  request.actionsRuntime = create(ActionsRuntimeSchema, {
    runtimeUrl: `${address}/api/actions_pipeline/`,
    resultsUrl: address,
    ...(decoded.runtimeToken
      ? { token: opts.keyring.seal(decoded.runtimeToken, runtimeTokenContext(request.jobId)) }
      : {}),
  });
  return request;
}

/**
 * The bus names the label no queue is bound for; the task's log should also say which runs-on it
 * came from and which of this runner's labels hosts do serve, so the user can pick one.
 */
async function publishOrExplain(opts: TaskRelayOptions, job: JobRequest): Promise<void> {
  try {
    await opts.bus.publishJob(job);
  } catch (error) {
    if (!(error instanceof UnroutableLabelError)) throw error;
    const depths = await opts.bus
      .queueDepths([...new Set(opts.labels.map((l) => l.fleetLabel))])
      .catch(() => undefined);
    const served = opts.labels.filter((l) => depths?.get(l.fleetLabel) !== undefined).map((l) => l.name);
    const runsOn = opts.labels.filter((l) => l.fleetLabel === job.runsOn).map((l) => l.name);
    throw new UnservedLabelError(job.runsOn, runsOn, served);
  }
}

class UnservedLabelError extends UnroutableLabelError {
  constructor(label: string, runsOn: readonly string[], served: readonly string[]) {
    super(label, served);
    this.message =
      `runs-on ${runsOn.map((l) => `"${l}"`).join(", ")} goes to the fleet label "${label}", which no host serves; ` +
      (served.length > 0
        ? `labels of this runner that hosts serve: ${served.join(", ")}`
        : `no label of this runner is served by a host yet: start an orchestrator with SOLSTICE_CAPACITY=${label}=1`);
  }
}

function relayEvent(event: JobEvent, reporter: TaskReporter, system: (line: string) => void): void {
  const time = event.time ? timestampDate(event.time) : new Date();
  switch (event.body.case) {
    case "accepted":
      system(`[solstice] job ${event.jobId} attempt ${event.attempt} accepted by ${event.body.value.host}`);
      break;
    case "stepStarted":
      reporter.stepStarted(event.body.value.index, time);
      break;
    case "log":
      for (const line of event.body.value.lines) {
        reporter.addLine(event.body.value.stepIndex, line.time ? timestampDate(line.time) : time, line.text);
      }
      break;
    case "stepFinished":
      reporter.stepFinished(event.body.value.index, resultOf(event.body.value.conclusion), time);
      break;
    case "jobFinished":
      if (event.body.value.reason) system(`[solstice] ${event.body.value.reason}`);
      break;
    default:
      break;
  }
}
