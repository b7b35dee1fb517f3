import {
  type Bus,
  BusUnavailableError,
  type CapacitySlotGate,
  createSlotGate,
  type JobConsumer,
  type JobDelivery,
} from "@solstice/bus";
import { effectiveLeaseMs, effectiveMaxVms, jobTakingOf, type OrchestratorConfig } from "@solstice/config";
import { type JobStore, jobDetailsOf } from "@solstice/db";
import {
  runJob as executorRunJob,
  GracefulCancel,
  hostActionProvider,
  type JobCacheAccess,
  JobEventStream,
  type runJob,
} from "@solstice/executor";
import type { GuestArch } from "@solstice/images";
import { type Control, type FleetKeyring, type JobEvent, type JobRequest, Outcome } from "@solstice/protocol";
import type { VmBackend } from "@solstice/vm";
import type { Logger } from "pino";
import { CancelTombstones } from "./cancel-tombstones.ts";
import { DebugSshKeeper } from "./debug-ssh.ts";
import type { ArchPlatform } from "./host-platforms.ts";
import { JobSlots } from "./job-slots.ts";
import { KvmPreference } from "./kvm-preference.ts";
import type { OrchestratorMetrics } from "./metrics.ts";
import { outcomeOfState } from "./outcome-states.ts";
import { recordingPublisher } from "./recording-publisher.ts";
import { type PoolSize, WarmPool } from "./warm-pool.ts";

export const ORCHESTRATOR_VERSION = "0.1.0";

/** How often a host looks for VMs a dead process (itself before a restart, or another) left. */
const REAP_INTERVAL_MS = 60_000;

export interface OrchestratorDeps {
  readonly config: OrchestratorConfig;
  readonly bus: Bus;
  readonly store: JobStore;
  readonly backend: VmBackend;
  readonly accelerator: string;
  /**
   * The architectures this host runs and how (host-platforms.ts): labels it emulates are left to
   * hosts that run them under KVM while those have room. Absent: no preference.
   */
  readonly platforms?: Partial<Record<GuestArch, ArchPlatform>>;
  readonly log: Logger;
  /** Unseals jobs' secrets; main.ts refuses to start without one (SOLSTICE_FLEET_KEYS). */
  readonly keyring?: FleetKeyring;
  /** Prometheus series fed by each job's events (services/orchestrator/src/metrics.ts). */
  readonly metrics?: OrchestratorMetrics;
  /**
   * Runs one accepted job (default the executor's runJob). bench/fleet.ts passes one that boots
   * nothing, so a hundred simulated hosts on one machine measure the scheduling alone.
   */
  readonly runJob?: typeof runJob;
  /** This host's job cache (host-job-cache.ts), opened to each Forgejo/Gitea or manual job with actions. */
  readonly jobCache?: JobCacheAccess;
}

export interface Orchestrator {
  /** Jobs running now, by job id. */
  readonly running: ReadonlyMap<string, { attempt: number; label: string }>;
  /** Every VM of this host holds one: running jobs' and the warm pool's. */
  readonly slots: CapacitySlotGate;
  /** The warm pool's VMs per label (SOLSTICE_WARM_POOL). */
  readonly warmPool: { sizes(): Record<string, PoolSize> };
  /** Whether the host takes no new jobs (`ciadm drain`); running jobs go on. */
  readonly draining: boolean;
  /** Stops taking new jobs and records it; running jobs finish. Idempotent. */
  drain(): Promise<void>;
  /** Takes jobs again. Idempotent. */
  undrain(): Promise<void>;
  /**
   * Stops taking jobs, lets running jobs finish for up to `graceMs`, then cancels what is left and
   * waits for their VMs to be destroyed.
   */
  stop(graceMs?: number): Promise<void>;
  /** Failed jobs' VMs kept for debug SSH on this host. */
  readonly debug: DebugSshKeeper;
}

interface RunningJob {
  readonly attempt: number;
  readonly label: string;
  readonly controller: AbortController;
  readonly done: Promise<void>;
}

/**
 * The host agent: takes jobs for the labels this host serves, never more than its slots allow,
 * records each acceptance before acking it, runs the job through the executor and publishes every
 * event to the job's owner. Cancels from the control exchange stop the job wherever it is.
 */
export async function startOrchestrator(deps: OrchestratorDeps): Promise<Orchestrator> {
  const { config, bus, store, backend, log } = deps;
  // One cache of actions and Node runtimes for all the jobs of this host.
  const actions = hostActionProvider({
    log,
    defaultUrl: config.actionsUrl,
    maxBytes: config.actionsCacheMb * 1024 * 1024,
    ...(config.actionsCache ? { cacheDir: config.actionsCache } : {}),
  });
  const labels = Object.keys(config.capacity);
  const slots = createSlotGate({ total: effectiveMaxVms(config), perLabel: config.capacity });
  const running = new Map<string, RunningJob>();
  const warmPool = new WarmPool({ targets: config.warmPool, backend, slots, log });
  const kvmPreference = new KvmPreference({
    hostId: config.hostId,
    store,
    platforms: deps.platforms ?? {},
    // Three missed heartbeats: the host is gone, or cut off and about to cancel its own jobs.
    liveWithinMs: 3 * config.heartbeatIntervalMs,
    log,
  });
  // The consumer takes a job when its label has a free slot or an idle warm VM, and no KVM host
  // should take it instead.
  const jobSlots = new JobSlots(slots, config.capacity, warmPool, log, (label) => kvmPreference.defers(label));
  // Reservation arms a label once and keeps it armed; a host that emulates a label must look
  // again at every heartbeat whether a KVM host should take its jobs instead, which polling does.
  const emulates = Object.values(deps.platforms ?? {}).some((platform) => platform?.accelerator === "tcg");
  const taking = emulates ? "poll" : jobTakingOf(config);

  const reaped = await backend.reapOrphans();
  if (reaped > 0) log.warn({ reaped }, "removed VMs left behind by an earlier run");
  // Again and again: another host that shares this machine's run root may die, and its VMs'
  // directories (seeds with key material among them) must not wait for its restart.
  const reaper = setInterval(() => {
    backend
      .reapOrphans()
      .then((count) => count > 0 && log.warn({ reaped: count }, "removed VMs a dead process left behind"))
      .catch((error: unknown) => log.warn({ err: error }, "reaping orphaned VMs failed"));
  }, REAP_INTERVAL_MS);
  reaper.unref();
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
  await kvmPreference.refresh().catch((error: unknown) => log.warn({ err: error }, "KVM hosts not read"));
  const hostHeartbeat = setInterval(() => {
    store
      .heartbeatHost(config.hostId, new Date())
      .catch((error: unknown) => log.warn({ err: error }, "host heartbeat not recorded"));
    kvmPreference.refresh().catch((error: unknown) => log.warn({ err: error }, "KVM hosts not read"));
  }, config.heartbeatIntervalMs);

  // Drain and undrain come from the control exchange and from a restart (the flag in the hosts
  // table survives it); `consumerChange` orders them, so a quick drain/undrain pair cannot race.
  let consumer: JobConsumer | undefined;
  let draining = (await store.listHosts()).find((h) => h.id === config.hostId)?.draining ?? false;
  let consumerChange: Promise<void> = Promise.resolve();
  const setDraining = (drain: boolean): Promise<void> => {
    const change = consumerChange.then(async () => {
      draining = drain;
      if (drain && consumer) {
        await consumer.stop();
        consumer = undefined;
        await warmPool.pause();
      } else if (!drain && !consumer) {
        warmPool.resume();
        consumer = await bus.consumeJobs({ labels, slots: jobSlots, onJob: accept, taking });
      }
      await store
        .setDraining(config.hostId, drain)
        .catch((error: unknown) => log.warn({ err: error }, "draining flag not recorded"));
      log.info(
        { draining: drain, running: running.size },
        drain ? "draining: taking no new jobs" : "taking jobs again",
      );
    });
    consumerChange = change.catch((error: unknown) => log.error({ err: error }, "could not change draining"));
    return change;
  };

  // The broker side of the lease rule: owners retry an attempt that is silent for the lease time,
  // so a host that cannot reach the broker cancels its jobs itself first. The owner's clock starts
  // at the last event it got, up to one heartbeat before the connection dropped, and the VMs need
  // time to go: hence lease − 2 × heartbeat, not lease − heartbeat.
  // From then on its jobs' events are dropped rather than awaited (their owners ignore that
  // attempt anyway), so waiting publishes cannot keep a VM alive past the owner's retry.
  const leaseMs = effectiveLeaseMs(config);
  const cutOffLimitMs = Math.max(leaseMs - 2 * config.heartbeatIntervalMs, config.heartbeatIntervalMs);
  let cutOffSince: number | undefined;
  let droppingEvents = false;
  /** Set by stop(): an Accepted still waiting for the broker then fails its job instead. */
  let stopping = false;
  const waitingPublishes = new Set<() => void>();
  const brokerWatch = setInterval(() => {
    if (bus.connected) {
      cutOffSince = undefined;
      droppingEvents = false;
      return;
    }
    cutOffSince ??= Date.now();
    if (droppingEvents || Date.now() - cutOffSince < cutOffLimitMs) return;
    droppingEvents = true;
    for (const drop of waitingPublishes) drop();
    log.error(
      { cutOffMs: Date.now() - cutOffSince, running: running.size },
      "cut off from the broker for longer than lease − 2 × heartbeat: cancelling this host's jobs",
    );
    for (const job of running.values()) {
      job.controller.abort(new BrokerLost(`this host lost the broker for over ${Math.round(cutOffLimitMs / 1000)} s`));
    }
  }, 500);
  brokerWatch.unref();
  // While cut off but within the limit, a job's events wait for the broker (the executor waits
  // with them, so nothing piles up beyond one pending publish per job); past it they are dropped,
  // but only while the broker is still away: the watch clears its flag up to 500 ms after a
  // reconnect, and a job taken in that time must not lose its events.
  // An Accepted is never dropped: a job starts only once its owner knows which host runs it. One
  // taken just before the cut waits, unstarted and claimed, for the broker to come back; dropped,
  // it would run while its owner, who starts the lease with the Accepted, knew nothing of it, and
  // its end could be dropped as well — a job lost (the cluster fault test found both).
  const publishToOwner = (event: JobEvent, owner: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const droppable = event.body.case !== "accepted";
      const dropping = () => droppable && droppingEvents && !bus.connected;
      const attempt = () => {
        if (dropping()) {
          resolve();
          return;
        }
        if (droppable) waitingPublishes.add(resolve);
        bus.publishEvent(event, owner).then(
          () => {
            waitingPublishes.delete(resolve);
            resolve();
          },
          (error: unknown) => {
            waitingPublishes.delete(resolve);
            if (dropping()) resolve();
            else if (error instanceof BusUnavailableError && !stopping) setTimeout(attempt, 500).unref();
            else reject(error);
          },
        );
      };
      attempt();
    });

  const debug = new DebugSshKeeper(config, store, log);
  await debug.forgetEarlierSessions();
  const unpoliced = Object.keys(config.networkPolicy).filter((label) => !(label in config.capacity));
  if (unpoliced.length > 0) {
    log.warn({ labels: unpoliced }, "SOLSTICE_NETWORK_POLICY names labels this host does not serve");
  }
  const cancelled = new CancelTombstones();
  const control = await bus.consumeControl(async (message: Control) => {
    if (message.command.case === "drain" || message.command.case === "undrain") {
      if (message.command.value.host === config.hostId) await setDraining(message.command.case === "drain");
      return;
    }
    if (message.command.case !== "cancel") return;
    const { jobId, attempt, reason } = message.command.value;
    const job = running.get(jobId);
    // A cancel for a finished job whose VM is kept for debugging ends that (`ciadm debug end`).
    if (!job && (await debug.end(jobId, reason || "ended"))) return;
    if (!job) {
      cancelled.remember(jobId, attempt, reason || "cancelled");
      return;
    }
    if (attempt !== 0 && attempt !== job.attempt) return;
    log.info({ job_id: jobId, attempt: job.attempt, reason }, "cancelling job");
    job.controller.abort(new GracefulCancel(reason || "cancelled"));
  });

  /**
   * A delivery of a job this host cannot claim. When the job is finished, its owner may have lost
   * the events that said so (it retried the attempt because of that): answer the delivered attempt
   * with the recorded end, outputs included, so the owner can end the job instead of waiting on it.
   */
  async function answerStaleDelivery(job: JobRequest, jobLog: Logger): Promise<void> {
    const record = await store.getJob(job.jobId);
    const result = record ? outcomeOfState(record.state) : undefined;
    if (!record || result === undefined) {
      jobLog.warn({ state: record?.state }, "a newer attempt of the job runs; dropping this delivery");
      return;
    }
    jobLog.warn({ state: record.state }, "job is finished already; answering its owner with the recorded end");
    const events = new JobEventStream(job.jobId, job.attempt, (event) => publishToOwner(event, job.owner));
    await events.jobFinished(result, record.reason ?? "", record.outputs);
    await events.drain();
  }

  async function accept(job: JobRequest, delivery: JobDelivery): Promise<void> {
    // No `host` here: the service's logger carries it once for every line (main.ts).
    const jobLog = log.child({ job_id: job.jobId, attempt: job.attempt });
    const claimed = await store.markRunning(job.jobId, job.attempt, config.hostId, new Date(), jobDetailsOf(job));
    if (!claimed) {
      // Finished already, or a newer attempt runs elsewhere: this delivery is stale.
      await answerStaleDelivery(job, jobLog);
      await delivery.ack();
      jobSlots.release(delivery.label);
      return;
    }
    const controller = new AbortController();
    // A job this host gives up because it lost the broker is its owner's to retry: its end is
    // recorded as given back, so the retry takes the job over instead of finding it cancelled.
    const givenBack = () => controller.signal.reason instanceof BrokerLost;
    const recorded = recordingPublisher((event) => publishToOwner(event, job.owner), store, jobLog, givenBack);
    const publish = deps.metrics ? deps.metrics.observeEvents(delivery.label, recorded) : recorded;
    const events = new JobEventStream(job.jobId, job.attempt, publish);
    try {
      await events.accepted(config.hostId, { heartbeatIntervalMs: config.heartbeatIntervalMs, leaseMs });
    } catch (error) {
      // The row says `running` and nobody can hear of it: end it here, so no phantom job stays.
      const reason = `the host could not announce the job to its owner: ${(error as Error).message}`;
      jobLog.error({ err: error }, "Accepted not published; failing the job");
      await store.finishJob(job.jobId, job.attempt, { state: "failed", reason }, new Date());
      await delivery.reject(reason);
      jobSlots.release(delivery.label);
      return;
    }
    await delivery.ack();
    const cancelledBefore = cancelled.reasonFor(job.jobId, job.attempt);
    if (cancelledBefore !== undefined) {
      jobLog.info({ reason: cancelledBefore }, "job was cancelled while it waited in the queue");
      await events.jobFinished(Outcome.CANCELLED, `cancelled before it started: ${cancelledBefore}`);
      await events.drain();
      jobSlots.release(delivery.label);
      return;
    }
    jobLog.info({ label: delivery.label, steps: job.steps.length }, "job accepted");

    const done = (async () => {
      // From here the job owns its slot, and the warm VM if its label's pool had one.
      const warm = await jobSlots.start(delivery.label);
      if (warmPool.serves(delivery.label)) {
        deps.metrics?.warmPoolStart(delivery.label, warm !== undefined);
        jobLog.info({ label: delivery.label, warm: warm !== undefined }, warm ? "warm pool hit" : "warm pool miss");
      }
      return (deps.runJob ?? executorRunJob)({
        job,
        backend,
        events,
        signal: controller.signal,
        log: jobLog,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        ...(deps.keyring ? { keyring: deps.keyring } : {}),
        keepFailedVm: debug.keep,
        ...(warm ? { warm } : {}),
        networkPolicy: config.networkPolicy[delivery.label] ?? "outbound",
        actions,
        ...(deps.jobCache ? { jobCache: deps.jobCache } : {}),
      });
    })()
      .then((result) => jobLog.info({ result: result.result, reason: result.reason }, "job finished"))
      .catch((error: unknown) => jobLog.error({ err: error }, "job ended with an error"))
      .finally(() => {
        running.delete(job.jobId);
        slots.release(delivery.label);
      });
    running.set(job.jobId, { attempt: job.attempt, label: delivery.label, controller, done });
  }

  if (!draining) consumer = await bus.consumeJobs({ labels, slots: jobSlots, onJob: accept, taking });
  log.info(
    {
      capacity: config.capacity,
      maxVms: effectiveMaxVms(config),
      warmPool: config.warmPool,
      jobTaking: taking,
      draining,
    },
    "orchestrator ready",
  );

  return {
    slots,
    warmPool,
    debug,
    get draining() {
      return draining;
    },
    drain: () => setDraining(true),
    undrain: () => setDraining(false),
    async stop(graceMs = config.shutdownGraceMs) {
      stopping = true;
      await consumerChange;
      await consumer?.stop();
      consumer = undefined;
      // Idle warm VMs go at once; running jobs get their grace time.
      await warmPool.close();
      const all = () => Promise.all([...running.values()].map((j) => j.done));
      const grace = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([all(), grace]);
      // Without a broker, the last events of the cancelled jobs could only wait: drop them.
      if (!bus.connected) {
        droppingEvents = true;
        for (const drop of waitingPublishes) drop();
      }
      for (const job of running.values()) job.controller.abort(new Error("the orchestrator is shutting down"));
      await all();
      await debug.endAll();
      clearInterval(hostHeartbeat);
      clearInterval(brokerWatch);
      clearInterval(reaper);
      await control.stop();
    },
    get running() {
      return new Map([...running].map(([id, j]) => [id, { attempt: j.attempt, label: j.label }]));
    },
  };
}

/** Why a host cancels its own jobs when it has been cut off from the broker too long. */
class BrokerLost extends Error {}
