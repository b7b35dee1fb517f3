import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Bus, UnroutableLabelError } from "@solstice/bus";
import {
  ControlSchema,
  create,
  EventOrder,
  type FleetKeyring,
  type JobEvent,
  type JobRequest,
  JobSource,
  Outcome,
  SCHEMA_VERSION,
} from "@solstice/protocol";
import { parseWorkflow, toJobRequest, type Workflow } from "@solstice/workflow";
import type { Logger } from "pino";
import { parse as parseYaml } from "yaml";
import type { ForgeClient } from "./forge-client.ts";
import { Result, type Task } from "./gen/runner/v1/messages_pb.ts";
import type { RunnerLabel } from "./labels.ts";
import { TaskReporter } from "./task-reporter.ts";

export interface TaskRelayOptions {
  task: Task;
  client: ForgeClient;
  bus: Bus;
  /** This runner's owner name: the routing key prefix of its jobs' events. */
  owner: string;
  labels: readonly RunnerLabel[];
  keyring?: FleetKeyring;
  log: Logger;
  reportIntervalMs?: number;
  /** After a Control.Cancel, how long to wait for the job's end before reporting it cancelled. Default 60000. */
  cancelGraceMs?: number;
  /** Registers the handler of this job's events with the daemon's single owner subscription. */
  follow(jobId: string, onEvent: (event: JobEvent) => void): () => void;
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

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

/**
 * Runs one forge task to its end: plans the single-job payload, publishes the job, relays its
 * events to the forge, and turns a cancel seen by the forge into Control.Cancel. Never throws:
 * every failure ends the task with the reason in its log.
 */
export async function relayTask(opts: TaskRelayOptions): Promise<Result> {
  const { task, log } = opts;
  const context = (task.context ?? {}) as JsonObject;
  const masks = [
    ...Object.values(task.secrets),
    text(context.token),
    text(context.forgejo_runtime_token),
    text(context.gitea_runtime_token),
  ].filter((v) => v.length > 0);
  let request: JobRequest | undefined;
  let cancelRequested: ((result: Result) => void) | undefined;
  const reporter = new TaskReporter({
    client: opts.client,
    taskId: task.id,
    stepCount: countSteps(task),
    masks,
    log,
    ...(opts.reportIntervalMs ? { reportIntervalMs: opts.reportIntervalMs } : {}),
    onRemoteEnd: (result) => cancelRequested?.(result),
  });
  const system = (line: string) => reporter.addLine(-1, new Date(), line);
  system(`[solstice] received task ${task.id} of job ${text(context.job)}, run ${text(context.run_id)}`);

  let workflow: Workflow;
  try {
    workflow = parseWorkflow(new TextDecoder().decode(task.workflowPayload ?? new Uint8Array()), {
      file: text(context.workflow) || "workflow.yml",
      contexts: {
        github: githubContext(context),
        vars: { ...task.vars },
        needs: Object.fromEntries(
          Object.entries(task.needs).map(([id, need]) => [
            id,
            { outputs: need.outputs, result: Result[need.result].toLowerCase() },
          ]),
        ),
      },
    });
    const job = workflow.jobs[0];
    if (workflow.jobs.length !== 1 || !job) {
      throw new Error(`a task carries exactly one job; this payload has ${workflow.jobs.length}`);
    }
    const label = opts.labels.find((l) => l.name === job.runsOn);
    if (!label) {
      throw new Error(
        `runs-on "${job.runsOn}" is not a label of this runner; it serves: ${opts.labels.map((l) => l.name).join(", ")}`,
      );
    }
    const repository = text(context.repository);
    request = toJobRequest(workflow, job, {
      source: JobSource.FORGEJO,
      owner: opts.owner,
      repository: {
        url: `${text(context.server_url).replace(/\/+$/, "")}/${repository}.git`,
        fullName: repository,
        commitSha: text(context.sha),
        ref: text(context.ref),
      },
      ...(opts.keyring ? { secrets: { values: { ...task.secrets }, keyring: opts.keyring } } : {}),
    });
    request.runsOn = label.fleetLabel;
  } catch (error) {
    for (const line of (error as Error).message.split("\n")) system(`[solstice] ${line}`);
    system("[solstice] the job was not started");
    await reporter.finish(Result.FAILURE, {});
    return Result.FAILURE;
  }

  const jobRequest = request;
  const jobLog = log.child({ job_id: jobRequest.jobId, task_id: String(task.id) });
  const order = new EventOrder();
  let finished: (value: { result: Result; outputs: Record<string, string> }) => void = () => {};
  const end = new Promise<{ result: Result; outputs: Record<string, string> }>((resolve) => {
    finished = resolve;
  });
  const unfollow = opts.follow(jobRequest.jobId, (event) => {
    if (event.attempt !== jobRequest.attempt) return;
    for (const e of order.push(event)) {
      const time = e.time ? timestampDate(e.time) : new Date();
      switch (e.body.case) {
        case "accepted":
          system(`[solstice] job ${jobRequest.jobId} accepted by ${e.body.value.host}`);
          break;
        case "stepStarted":
          reporter.stepStarted(e.body.value.index, time);
          break;
        case "log":
          for (const line of e.body.value.lines) {
            reporter.addLine(e.body.value.stepIndex, line.time ? timestampDate(line.time) : time, line.text);
          }
          break;
        case "stepFinished":
          reporter.stepFinished(e.body.value.index, resultOf(e.body.value.conclusion), time);
          break;
        case "jobFinished":
          if (e.body.value.reason) system(`[solstice] ${e.body.value.reason}`);
          finished({ result: resultOf(e.body.value.result), outputs: { ...e.body.value.outputs } });
          break;
        default:
          break;
      }
    }
  });

  let graceTimer: NodeJS.Timeout | undefined;
  cancelRequested = (remote) => {
    const reason = remote === Result.CANCELLED ? "cancelled in the forge" : "the forge ended the task";
    system(`[solstice] ${reason}; stopping the job`);
    jobLog.info({ reason }, "forge ended the task; sending Control.Cancel");
    opts.bus
      .publishControl(
        create(ControlSchema, {
          schemaVersion: SCHEMA_VERSION,
          command: { case: "cancel", value: { jobId: jobRequest.jobId, attempt: jobRequest.attempt, reason } },
        }),
      )
      .catch((error: unknown) => jobLog.error({ err: error }, "Control.Cancel could not be published"));
    graceTimer = setTimeout(() => finished({ result: Result.CANCELLED, outputs: {} }), opts.cancelGraceMs ?? 60_000);
  };

  try {
    await opts.bus.publishJob(jobRequest);
    jobLog.info({ runs_on: jobRequest.runsOn }, "job published");
  } catch (error) {
    unfollow();
    const message =
      error instanceof UnroutableLabelError
        ? error.message
        : `the job could not be handed to the fleet: ${(error as Error).message}`;
    system(`[solstice] ${message}`);
    await reporter.finish(Result.FAILURE, {});
    return Result.FAILURE;
  }

  const outcome = await end;
  clearTimeout(graceTimer);
  unfollow();
  await reporter.finish(outcome.result, outcome.outputs);
  jobLog.info({ result: Result[outcome.result] }, "task reported");
  return outcome.result;
}

/**
 * The number of YAML steps, which is how the forge numbers StepState ids; read apart from planning
 * so that a payload we refuse still gets every step reported.
 */
function countSteps(task: Task): number {
  try {
    const doc = parseYaml(new TextDecoder().decode(task.workflowPayload ?? new Uint8Array())) as {
      jobs?: Record<string, { steps?: unknown }>;
    };
    const steps = Object.values(doc?.jobs ?? {})[0]?.steps;
    return Array.isArray(steps) ? steps.length : 0;
  } catch {
    return 0;
  }
}

/** The github context the forge sends, without the token (it never travels in plain text). */
function githubContext(context: JsonObject): Record<string, unknown> {
  const { token: _token, forgejo_runtime_token: _f, gitea_runtime_token: _g, ...rest } = context;
  return rest;
}
