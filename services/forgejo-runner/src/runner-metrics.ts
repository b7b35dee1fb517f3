import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { Result } from "./gen/runner/v1/messages_pb.ts";

/** The runner's Prometheus series, fed by the daemon and each task's reporter. */
export interface RunnerMetrics {
  readonly registry: Registry;
  taskTaken(): void;
  taskFinished(result: Result): void;
  /** A call to the forge failed (`rpc` is the method: FetchTask, UpdateLog…). */
  forgeError(rpc: string): void;
  /** Log rows the forge acknowledged. */
  logRowsSent(count: number): void;
}

export interface RunnerMetricsSources {
  /** Tasks running now (the daemon's `active`). */
  running(): number;
  capacity: number;
  /** Whether the broker connection is up. */
  brokerConnected(): boolean;
}

const RESULT_NAMES: Record<Result, string> = {
  [Result.UNSPECIFIED]: "unspecified",
  [Result.SUCCESS]: "success",
  [Result.FAILURE]: "failure",
  [Result.CANCELLED]: "cancelled",
  [Result.SKIPPED]: "skipped",
};

export function createRunnerMetrics(sources: RunnerMetricsSources): RunnerMetrics {
  const registry = new Registry();
  // Process memory, CPU, event-loop lag and GC: what tells a leak or a blocked loop apart.
  collectDefaultMetrics({ register: registry });
  const taken = new Counter({
    name: "solstice_forgejo_tasks_taken_total",
    help: "Tasks this runner took from the forge",
    registers: [registry],
  });
  new Gauge({
    name: "solstice_forgejo_tasks_running",
    help: "Tasks this runner follows now",
    registers: [registry],
    collect() {
      this.set(sources.running());
    },
  });
  new Gauge({
    name: "solstice_forgejo_capacity_slots",
    help: "Tasks this runner takes at once",
    registers: [registry],
    collect() {
      this.set(sources.capacity);
    },
  });
  const finished = new Counter({
    name: "solstice_forgejo_tasks_finished_total",
    help: "Tasks reported to the forge as finished, by result (success, failure, cancelled, skipped)",
    labelNames: ["result"],
    registers: [registry],
  });
  const forgeErrors = new Counter({
    name: "solstice_forgejo_forge_errors_total",
    help: "Calls to the forge that failed (unreachable, timed out or answered an error), by method",
    labelNames: ["rpc"],
    registers: [registry],
  });
  const rowsSent = new Counter({
    name: "solstice_forgejo_log_rows_sent_total",
    help: "Log rows the forge acknowledged",
    registers: [registry],
  });
  new Gauge({
    name: "solstice_broker_connected",
    help: "1 while the RabbitMQ connection is up",
    registers: [registry],
    collect() {
      this.set(sources.brokerConnected() ? 1 : 0);
    },
  });
  // Each result starts at 0, so a rate over them works before the first failure.
  for (const name of ["success", "failure", "cancelled", "skipped"]) finished.inc({ result: name }, 0);
  return {
    registry,
    taskTaken: () => taken.inc(),
    taskFinished: (result) => finished.inc({ result: RESULT_NAMES[result] }),
    forgeError: (rpc) => forgeErrors.inc({ rpc }),
    logRowsSent: (count) => rowsSent.inc(count),
  };
}
