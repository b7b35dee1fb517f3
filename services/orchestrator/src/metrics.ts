import type { Bus } from "@solstice/bus";
import type { JobEvent } from "@solstice/protocol";
import type { Logger } from "pino";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { PoolSize } from "./warm-pool.ts";

/** What the metrics read from the running orchestrator at scrape time. */
export interface MetricsSources {
  readonly bus: Pick<Bus, "queueDepths" | "deadLetterDepth" | "connected">;
  /** Labels served and slots per label. */
  readonly capacity: Readonly<Record<string, number>>;
  /** Jobs running now, by id (the orchestrator's `running`). */
  running(): ReadonlyMap<string, { label: string }>;
  /** The warm pool's VMs per label (labels with a pool only). */
  warmPool?(): Readonly<Record<string, PoolSize>>;
  readonly log: Logger;
}

/** The orchestrator's Prometheus series; the executor's events feed the job and step series. */
export interface OrchestratorMetrics {
  readonly registry: Registry;
  /** Wraps a job's event publisher so each event also updates the series. */
  observeEvents<T>(label: string, publish: (event: JobEvent) => Promise<T>): (event: JobEvent) => Promise<T>;
  /** The broker connection came back after a loss. */
  reconnected(): void;
  /** A job of a label with a warm pool started, on a pooled VM (`warm`) or on a fresh one. */
  warmPoolStart(label: string, warm: boolean): void;
}

/** A scrape never waits longer than this for the broker; the series keep their last value. */
const brokerQueryTimeoutMs = 2_000;

/** Outcome enum values (proto/solstice/v1/common.proto) as series label values. */
const OUTCOME_NAMES = ["unspecified", "success", "failure", "cancelled", "skipped"];

export function createOrchestratorMetrics(sources: MetricsSources): OrchestratorMetrics {
  const registry = new Registry();
  // Process memory, CPU, event-loop lag and GC: what tells a leak or a blocked loop apart.
  collectDefaultMetrics({ register: registry });
  const labels = Object.keys(sources.capacity);
  const withTimeout = <T>(promise: Promise<T>): Promise<T> =>
    Promise.race([
      promise,
      new Promise<T>((_, reject) =>
        setTimeout(() => reject(new Error("broker query timed out")), brokerQueryTimeoutMs).unref(),
      ),
    ]);

  new Gauge({
    name: "solstice_jobs_running",
    help: "Jobs running on this host now, by label",
    labelNames: ["label"],
    registers: [registry],
    collect() {
      const counts = new Map(labels.map((l) => [l, 0]));
      for (const job of sources.running().values()) counts.set(job.label, (counts.get(job.label) ?? 0) + 1);
      for (const [label, count] of counts) this.set({ label }, count);
    },
  });
  const jobsTotal = new Counter({
    name: "solstice_jobs_total",
    help: "Jobs this host accepted and finished, by state (accepted, success, failure, cancelled) and label",
    labelNames: ["state", "label"],
    registers: [registry],
  });
  new Gauge({
    name: "solstice_queue_depth",
    help: "Jobs waiting in each served label's queue (shared by every host of the label)",
    labelNames: ["label"],
    registers: [registry],
    async collect() {
      const depths = await withTimeout(sources.bus.queueDepths(labels)).catch((error: unknown) => {
        sources.log.debug({ err: error }, "queue depth not read");
        return undefined;
      });
      for (const [label, depth] of depths ?? []) if (depth !== undefined) this.set({ label }, depth);
    },
  });
  new Gauge({
    name: "solstice_dead_letters",
    help: "Messages in the namespace's dead-letter queue",
    registers: [registry],
    async collect() {
      const depth = await withTimeout(sources.bus.deadLetterDepth()).catch(() => undefined);
      if (depth !== undefined) this.set(depth);
    },
  });
  const poolSizes = () => Object.entries(sources.warmPool?.() ?? {});
  new Gauge({
    name: "solstice_vms_running",
    help: "VMs this host runs now: one per running job, plus the warm pool's",
    registers: [registry],
    collect() {
      this.set(sources.running().size + poolSizes().reduce((sum, [, size]) => sum + size.idle + size.booting, 0));
    },
  });
  new Gauge({
    name: "solstice_warm_pool_vms",
    help: "Warm pool VMs by label and state (idle: booted and waiting for a job; booting)",
    labelNames: ["label", "state"],
    registers: [registry],
    collect() {
      for (const [label, size] of poolSizes()) {
        this.set({ label, state: "idle" }, size.idle);
        this.set({ label, state: "booting" }, size.booting);
      }
    },
  });
  new Gauge({
    name: "solstice_warm_pool_memory_bytes",
    help: "Guest memory given to the warm pool's VMs, by label",
    labelNames: ["label"],
    registers: [registry],
    collect() {
      for (const [label, size] of poolSizes()) this.set({ label }, size.memoryMiB * 1024 * 1024);
    },
  });
  const poolHits = new Counter({
    name: "solstice_warm_pool_hits_total",
    help: "Jobs of a label with a warm pool that started on a pooled VM",
    labelNames: ["label"],
    registers: [registry],
  });
  const poolMisses = new Counter({
    name: "solstice_warm_pool_misses_total",
    help: "Jobs of a label with a warm pool that found no idle pooled VM and booted a fresh one",
    labelNames: ["label"],
    registers: [registry],
  });
  new Gauge({
    name: "solstice_capacity_slots",
    help: "Slots this host offers, by label",
    labelNames: ["label"],
    registers: [registry],
    collect() {
      for (const [label, slots] of Object.entries(sources.capacity)) this.set({ label }, slots);
    },
  });
  new Gauge({
    name: "solstice_capacity_used_ratio",
    help: "Running jobs over slots, by label (1 = full)",
    labelNames: ["label"],
    registers: [registry],
    collect() {
      const used = new Map<string, number>();
      for (const job of sources.running().values()) used.set(job.label, (used.get(job.label) ?? 0) + 1);
      for (const [label, slots] of Object.entries(sources.capacity))
        this.set({ label }, (used.get(label) ?? 0) / slots);
    },
  });
  new Gauge({
    name: "solstice_broker_connected",
    help: "1 while the RabbitMQ connection is up",
    registers: [registry],
    collect() {
      this.set(sources.bus.connected ? 1 : 0);
    },
  });
  const reconnects = new Counter({
    name: "solstice_broker_reconnects_total",
    help: "Times the broker connection was lost and restored",
    registers: [registry],
  });
  const bootSeconds = new Histogram({
    name: "solstice_vm_boot_seconds",
    help: "From accepting a job to its first step: image, VM boot and SSH, by label",
    labelNames: ["label"],
    buckets: [1, 2, 5, 10, 20, 30, 60, 90, 120, 180, 300],
    registers: [registry],
  });
  const stepSeconds = new Histogram({
    name: "solstice_step_seconds",
    help: "Duration of each step, by label and outcome",
    labelNames: ["label", "outcome"],
    buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600],
    registers: [registry],
  });

  return {
    registry,
    reconnected: () => reconnects.inc(),
    warmPoolStart: (label, warm) => (warm ? poolHits : poolMisses).inc({ label }),
    observeEvents(label, publish) {
      let acceptedAt: number | undefined;
      let bootObserved = false;
      // A job has few steps; a bounded map still keeps a confused event stream from growing it.
      const stepStarts = new Map<number, number>();
      return (event) => {
        const now = performance.now();
        const body = event.body;
        if (body.case === "accepted") {
          acceptedAt = now;
          jobsTotal.inc({ state: "accepted", label });
        } else if (body.case === "stepStarted") {
          if (!bootObserved && acceptedAt !== undefined) {
            bootObserved = true;
            bootSeconds.observe({ label }, (now - acceptedAt) / 1000);
          }
          if (stepStarts.size < 1_000) stepStarts.set(body.value.index, now);
        } else if (body.case === "stepFinished") {
          const started = stepStarts.get(body.value.index);
          stepStarts.delete(body.value.index);
          if (started !== undefined) {
            const outcome = OUTCOME_NAMES[body.value.outcome] ?? String(body.value.outcome);
            stepSeconds.observe({ label, outcome }, (now - started) / 1000);
          }
        } else if (body.case === "jobFinished") {
          jobsTotal.inc({ state: OUTCOME_NAMES[body.value.result] ?? String(body.value.result), label });
        }
        return publish(event);
      };
    },
  };
}
