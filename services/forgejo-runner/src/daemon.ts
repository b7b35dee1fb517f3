import { Code, ConnectError } from "@connectrpc/connect";
import type { Bus } from "@solstice/bus";
import { Backoff, followOwnerEvents, parseLabel, sleep } from "@solstice/forge-relay";
import type { Readiness } from "@solstice/health";
import type { FleetKeyring } from "@solstice/protocol";
import type { Logger } from "pino";
import type { ForgejoRunnerConfig } from "./config.ts";
import { createForgeClient } from "./forge-client.ts";
import type { RunnerFile } from "./runner-file.ts";
import type { RunnerMetrics } from "./runner-metrics.ts";
import { relayTask } from "./task-relay.ts";
import { RUNNER_VERSION } from "./version.ts";

export interface DaemonOptions {
  config: ForgejoRunnerConfig;
  runner: RunnerFile;
  bus: Bus;
  log: Logger;
  /** Seals each job's secrets and checkout token; the orchestrators hold the same keys. */
  keyring: FleetKeyring;
  metrics?: RunnerMetrics;
}

export interface Daemon {
  /** Tasks running now. */
  readonly active: number;
  /** Whether it can take tasks now, and why not (for /readyz). */
  readiness(): Readiness;
  /**
   * Stops taking tasks, waits up to `graceMs` for running ones, then cancels what is left (each
   * task is reported cancelled to the forge) and stops following events.
   */
  stop(graceMs?: number): Promise<void>;
}

/** The runner's credentials are dead: the forge no longer knows it. */
export class RunnerUnknownError extends Error {
  override readonly name = "RunnerUnknownError";
  readonly code = "runner_unknown";
  constructor(address: string, uuid: string, detail: string) {
    super(
      `the forge at ${address} does not know runner ${uuid} (${detail}); register again: solstice-forgejo-runner register`,
    );
  }
}

/**
 * The long-running runner: declares its labels, polls FetchTask while a slot is free and the
 * broker is up, and relays each task. One owner subscription carries every job's events.
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const { config, runner, bus, metrics } = opts;
  const log = opts.log.child({ runner: runner.name });
  const labels = runner.labels.map(parseLabel);
  const owner = config.owner ?? `forgejo-${runner.uuid}`;
  // The last call's outcome says whether the forge is reachable, whichever part of the runner made it.
  let forgeProblem: string | undefined;
  const client = createForgeClient({
    address: runner.address,
    credentials: { uuid: runner.uuid, token: runner.token },
    callTimeoutMs: config.callTimeoutMs,
    observe(method, error) {
      if (!error) {
        forgeProblem = undefined;
        return;
      }
      metrics?.forgeError(method);
      forgeProblem =
        error.code === Code.Unauthenticated
          ? new RunnerUnknownError(runner.address, runner.uuid, error.rawMessage).message
          : `the forge does not answer ${method}: ${error.message}`;
    },
  });
  const stopTaking = new AbortController();
  const cancelRunning = new AbortController();

  const backoff = new Backoff(500, config.maxBackoffMs);
  for (;;) {
    try {
      await client.runner.declare({ version: RUNNER_VERSION, labels: labels.map((l) => l.name) });
      break;
    } catch (error) {
      const err = ConnectError.from(error);
      // A very old forge has no Declare; the official runners carry on without it.
      if (err.code === Code.Unimplemented) {
        log.warn("the forge does not know Declare (older than Forgejo 1.21 / Gitea 1.21); labels stay as registered");
        break;
      }
      if (err.code === Code.Unauthenticated) throw new RunnerUnknownError(runner.address, runner.uuid, err.rawMessage);
      const wait = backoff.next();
      log.warn({ err: err.message, retry_in_ms: wait }, "Declare failed; retrying");
      await sleep(wait);
    }
  }
  log.info({ labels: labels.map((l) => l.raw), capacity: config.capacity, owner }, "declared to the forge");

  const events = await followOwnerEvents(bus, owner);
  const running = new Set<Promise<unknown>>();
  let tasksVersion = 0n;
  const poll = async () => {
    const pollBackoff = new Backoff(config.fetchIntervalMs, config.maxBackoffMs);
    while (!stopTaking.signal.aborted) {
      if (running.size >= config.capacity || !bus.connected) {
        // A full runner or a broker that is away takes no task: it could not be handed on.
        await sleep(Math.min(config.fetchIntervalMs, 500), stopTaking.signal);
        continue;
      }
      let wait = config.fetchIntervalMs;
      try {
        const res = await client.runner.fetchTask({ tasksVersion }, { timeoutMs: config.fetchTimeoutMs });
        pollBackoff.reset();
        if (res.tasksVersion > tasksVersion) tasksVersion = res.tasksVersion;
        if (res.task) {
          // A task was taken: ask the forge's database again next time, as the official runner does.
          tasksVersion = 0n;
          wait = 0;
          const task = res.task;
          const taskLog = log.child({ task_id: String(task.id) });
          taskLog.info("task received");
          metrics?.taskTaken();
          const done = relayTask({
            task,
            client,
            bus,
            events,
            owner,
            labels,
            keyring: opts.keyring,
            log: taskLog,
            reportIntervalMs: config.reportIntervalMs,
            maxBackoffMs: config.maxBackoffMs,
            leaseMs: config.leaseMs,
            maxAttempts: config.maxAttempts,
            queueTimeoutMs: config.queueTimeoutMs,
            cancelGraceMs: config.cancelGraceMs,
            signal: cancelRunning.signal,
            ...(metrics ? { metrics } : {}),
          }).catch((error: unknown) => taskLog.error({ err: error }, "task relay failed"));
          running.add(done);
          void done.finally(() => running.delete(done));
        }
      } catch (error) {
        // A runner deleted in the forge's UI (unauthenticated) can only say so, slowly: see readiness().
        const err = ConnectError.from(error);
        wait = pollBackoff.next();
        log.warn({ err: err.message, retry_in_ms: wait }, "FetchTask failed");
      }
      await sleep(wait, stopTaking.signal);
    }
  };
  const polling = poll();

  return {
    get active() {
      return running.size;
    },
    readiness() {
      if (stopTaking.signal.aborted) return { ready: false, reason: "stopping" };
      if (!bus.connected) return { ready: false, reason: "the broker is not connected: taking no tasks" };
      if (forgeProblem) return { ready: false, reason: forgeProblem };
      return { ready: true };
    },
    async stop(graceMs = 30_000) {
      stopTaking.abort();
      await polling;
      let timer: NodeJS.Timeout | undefined;
      const all = () => Promise.allSettled([...running]);
      await Promise.race([
        all(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (running.size > 0) {
        log.warn({ running: running.size }, "shutdown deadline passed: cancelling the running tasks");
        cancelRunning.abort(new Error("the runner is shutting down"));
        await all();
      }
      await events.stop();
    },
  };
}
