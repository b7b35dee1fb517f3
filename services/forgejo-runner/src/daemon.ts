import { Code, ConnectError } from "@connectrpc/connect";
import type { Bus, Subscription } from "@solstice/bus";
import type { FleetKeyring, JobEvent } from "@solstice/protocol";
import type { Logger } from "pino";
import { Backoff, sleep } from "./backoff.ts";
import type { ForgejoRunnerConfig } from "./config.ts";
import { createForgeClient } from "./forge-client.ts";
import { parseLabel } from "./labels.ts";
import type { RunnerFile } from "./runner-file.ts";
import { relayTask } from "./task-relay.ts";
import { RUNNER_VERSION } from "./version.ts";

export interface DaemonOptions {
  config: ForgejoRunnerConfig;
  runner: RunnerFile;
  bus: Bus;
  log: Logger;
  keyring?: FleetKeyring;
}

export interface Daemon {
  /** Tasks running now. */
  readonly active: number;
  /** Stops taking tasks, waits up to `graceMs` for running ones, then stops following them. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The long-running runner: declares its labels, polls FetchTask while a slot is free, and relays
 * each task. One owner subscription carries every job's events and hands them to their task.
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const { config, runner, bus } = opts;
  const log = opts.log.child({ runner: runner.name });
  const labels = runner.labels.map(parseLabel);
  const owner = config.owner ?? `forgejo-${runner.uuid}`;
  const client = createForgeClient({
    address: runner.address,
    credentials: { uuid: runner.uuid, token: runner.token },
  });
  const stopping = new AbortController();

  const backoff = new Backoff(500, config.maxBackoffMs);
  for (;;) {
    try {
      await client.runner.declare({ version: RUNNER_VERSION, labels: labels.map((l) => l.name) });
      break;
    } catch (error) {
      const err = ConnectError.from(error);
      if (err.code === Code.Unauthenticated) {
        throw new Error(
          `the forge at ${runner.address} does not know runner ${runner.uuid} (${err.rawMessage}); register again: solstice-forgejo-runner register`,
        );
      }
      const wait = backoff.next();
      log.warn({ err: err.message, retry_in_ms: wait }, "Declare failed; retrying");
      await sleep(wait);
    }
  }
  log.info({ labels: labels.map((l) => l.raw), capacity: config.capacity }, "declared to the forge");

  const followers = new Map<string, (event: JobEvent) => void>();
  const subscription: Subscription = await bus.consumeEvents({
    owner,
    onEvent: async (event) => {
      followers.get(event.jobId)?.(event);
    },
  });

  const running = new Set<Promise<unknown>>();
  let tasksVersion = 0n;
  const poll = async () => {
    const pollBackoff = new Backoff(config.fetchIntervalMs, config.maxBackoffMs);
    while (!stopping.signal.aborted) {
      if (running.size >= config.capacity || !bus.connected) {
        // A full runner or a broker that is away takes no task: it could not be handed on.
        await sleep(Math.min(config.fetchIntervalMs, 500), stopping.signal);
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
          const done = relayTask({
            task,
            client,
            bus,
            owner,
            labels,
            log: taskLog,
            reportIntervalMs: config.reportIntervalMs,
            ...(opts.keyring ? { keyring: opts.keyring } : {}),
            follow(jobId, onEvent) {
              followers.set(jobId, onEvent);
              return () => followers.delete(jobId);
            },
          }).catch((error: unknown) => taskLog.error({ err: error }, "task relay failed"));
          running.add(done);
          void done.finally(() => running.delete(done));
        }
      } catch (error) {
        wait = pollBackoff.next();
        log.warn({ err: ConnectError.from(error).message, retry_in_ms: wait }, "FetchTask failed");
      }
      await sleep(wait, stopping.signal);
    }
  };
  const polling = poll();

  return {
    get active() {
      return running.size;
    },
    async stop(graceMs = 30_000) {
      stopping.abort();
      await polling;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...running]),
        new Promise((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
      await subscription.stop();
    },
  };
}
