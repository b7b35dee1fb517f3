import { type Bus, type CapacitySlotGate, createSlotGate, type JobConsumer, type JobDelivery } from "@solstice/bus";
import { effectiveMaxVms, type OrchestratorConfig } from "@solstice/config";
import type { JobDetails, JobStore } from "@solstice/db";
import { JobEventStream, runJob } from "@solstice/executor";
import { type Control, type JobRequest, JobSource } from "@solstice/protocol";
import type { VmBackend } from "@solstice/vm";
import type { Logger } from "pino";
import { recordingPublisher } from "./recording-publisher.ts";

export const ORCHESTRATOR_VERSION = "0.1.0";

export interface OrchestratorDeps {
  readonly config: OrchestratorConfig;
  readonly bus: Bus;
  readonly store: JobStore;
  readonly backend: VmBackend;
  readonly accelerator: string;
  readonly log: Logger;
}

export interface Orchestrator {
  /** Jobs running now, by job id. */
  readonly running: ReadonlyMap<string, { attempt: number; label: string }>;
  readonly slots: CapacitySlotGate;
  /**
   * Stops taking jobs, lets running jobs finish for up to `graceMs`, then cancels what is left and
   * waits for their VMs to be destroyed.
   */
  stop(graceMs?: number): Promise<void>;
}

interface RunningJob {
  readonly attempt: number;
  readonly label: string;
  readonly controller: AbortController;
  readonly done: Promise<void>;
}

const SOURCE_NAMES = { [JobSource.FORGEJO]: "forgejo", [JobSource.GITHUB]: "github" } as const;

/**
 * The host agent: takes jobs for the labels this host serves, never more than its slots allow,
 * records each acceptance before acking it, runs the job through the executor and publishes every
 * event to the job's owner. Cancels from the control exchange stop the job wherever it is.
 */
export async function startOrchestrator(deps: OrchestratorDeps): Promise<Orchestrator> {
  const { config, bus, store, backend, log } = deps;
  const labels = Object.keys(config.capacity);
  const slots = createSlotGate({ total: effectiveMaxVms(config), perLabel: config.capacity });
  const running = new Map<string, RunningJob>();

  const reaped = await backend.reapOrphans();
  if (reaped > 0) log.warn({ reaped }, "removed VMs left behind by an earlier run");
  await bus.declareTopology();
  for (const label of labels) await bus.ensureLabelQueue(label);
  const now = new Date();
  await store.upsertHost(
    {
      id: config.hostId,
      labels: config.capacity,
      maxVms: effectiveMaxVms(config),
      version: ORCHESTRATOR_VERSION,
      backend: backend.name,
      accelerator: deps.accelerator,
      startedAt: now,
    },
    now,
  );
  const hostHeartbeat = setInterval(() => {
    store
      .heartbeatHost(config.hostId, new Date())
      .catch((error: unknown) => log.warn({ err: error }, "host heartbeat not recorded"));
  }, config.heartbeatIntervalMs);

  const control = await bus.consumeControl(async (message: Control) => {
    if (message.command.case !== "cancel") return;
    const { jobId, attempt, reason } = message.command.value;
    const job = running.get(jobId);
    if (!job || (attempt !== 0 && attempt !== job.attempt)) return;
    log.info({ job_id: jobId, attempt: job.attempt, reason }, "cancelling job");
    job.controller.abort(new Error(reason || "cancelled"));
  });

  async function accept(job: JobRequest, delivery: JobDelivery): Promise<void> {
    const jobLog = log.child({ job_id: job.jobId, attempt: job.attempt, host: config.hostId });
    const claimed = await store.markRunning(job.jobId, job.attempt, config.hostId, new Date(), detailsOf(job));
    if (!claimed) {
      // Finished already, or a newer attempt runs elsewhere: this delivery is stale.
      jobLog.warn("job is finished or superseded; dropping this delivery");
      await delivery.ack();
      slots.release(delivery.label);
      return;
    }
    const publish = recordingPublisher((event) => bus.publishEvent(event, job.owner), store, jobLog);
    const events = new JobEventStream(job.jobId, job.attempt, publish);
    await events.accepted(config.hostId);
    await delivery.ack();
    jobLog.info({ label: delivery.label, steps: job.steps.length }, "job accepted");

    const controller = new AbortController();
    const done = runJob({
      job,
      backend,
      events,
      signal: controller.signal,
      log: jobLog,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
    })
      .then((result) => jobLog.info({ result: result.result, reason: result.reason }, "job finished"))
      .catch((error: unknown) => jobLog.error({ err: error }, "job ended with an error"))
      .finally(() => {
        running.delete(job.jobId);
        slots.release(delivery.label);
      });
    running.set(job.jobId, { attempt: job.attempt, label: delivery.label, controller, done });
  }

  const consumer: JobConsumer = await bus.consumeJobs({ labels, slots, onJob: accept });
  log.info({ host: config.hostId, capacity: config.capacity, maxVms: effectiveMaxVms(config) }, "orchestrator ready");

  return {
    slots,
    async stop(graceMs = config.shutdownGraceMs) {
      await consumer.stop();
      const all = () => Promise.all([...running.values()].map((j) => j.done));
      const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([all(), grace]);
      for (const job of running.values()) job.controller.abort(new Error("the orchestrator is shutting down"));
      await all();
      clearInterval(hostHeartbeat);
      await control.stop();
    },
    get running() {
      return new Map([...running].map(([id, j]) => [id, { attempt: j.attempt, label: j.label }]));
    },
  };
}

function detailsOf(job: JobRequest): JobDetails {
  return {
    source: SOURCE_NAMES[job.source as keyof typeof SOURCE_NAMES] ?? "manual",
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
