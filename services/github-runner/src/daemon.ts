import type { Bus } from "@solstice/bus";
import { Backoff, followOwnerEvents, type OwnerEvents, sleep } from "@solstice/forge-relay";
import type { FleetKeyring } from "@solstice/protocol";
import type { Logger } from "pino";
import { RunnerTokenSource } from "./client/oauth.ts";
import { VssClient } from "./client/vss-client.ts";
import { prop, str } from "./client/wire-json.ts";
import type { GitHubRunnerConfig } from "./config.ts";
import { GitHubRunnerError, HttpStatusError, HttpUnreachableError } from "./errors.ts";
import { MessageListener, type RunnerMessage } from "./poll/message-listener.ts";
import { acquireJob, parseJobRequestRef } from "./poll/run-service.ts";
import { defaultOwnerName } from "./registration/owner-name.ts";
import { checkLabels, fleetLabelOf } from "./registration/registration.ts";
import type { RunnerRegistration } from "./registration/runner-files.ts";
import type { TaskResult } from "./report/job-log.ts";
import { parseJobMessage } from "./run/job-message.ts";
import { runGitHubJob } from "./run/job-relay.ts";

export interface DaemonOptions {
  config: GitHubRunnerConfig;
  registration: RunnerRegistration;
  bus: Bus;
  log: Logger;
  keyring?: FleetKeyring;
  /** Told when a job ends, with the conclusion GitHub got. */
  onJobDone?(conclusion: TaskResult): void;
}

/** Why the daemon stopped. */
export interface DaemonEnd {
  reason: "stopped" | "ephemeral_done" | "shutdown_requested" | "fatal";
  /** For "fatal": what went wrong and what to do (a GitHubRunnerError). */
  error?: Error;
}

export interface Daemon {
  /** True while a job runs (the runner polls as Busy). */
  readonly busy: boolean;
  /** True once a session is open and messages are being polled. */
  readonly listening: boolean;
  /** Resolves when the daemon stops, on its own (a deleted runner, an ephemeral runner's one job) or by stop(). */
  readonly done: Promise<DaemonEnd>;
  /** Stops polling, lets a running job finish for up to `graceMs`, then cancels it; deletes the session. */
  stop(graceMs?: number): Promise<void>;
}

type ErrorAction =
  | { action: "fatal"; error: Error }
  | { action: "new_session" }
  | { action: "reauth" }
  | { action: "wait"; ms?: number };

const SESSION_GONE = new Set(["taskagentsessionexpiredexception", "runnersessioninvalid"]);
const RUNNER_GONE = new Set([
  "taskagentnotfoundexception",
  "taskagentpoolnotfoundexception",
  "runnernotfound",
  "accessdeniedexception",
  "hostedrunnerdeprovisioned",
]);

/** What the official listener does about a failed call (MessageListener.cs). */
function classify(error: unknown): ErrorAction {
  if (error instanceof GitHubRunnerError) {
    if (error.code === "runner_deleted" || error.code === "credentials_refused") return { action: "fatal", error };
    return { action: "wait" };
  }
  if (error instanceof HttpStatusError) {
    const kind = error.kind.toLowerCase();
    if (SESSION_GONE.has(kind)) return { action: "new_session" };
    if (RUNNER_GONE.has(kind)) {
      return {
        action: "fatal",
        error: new GitHubRunnerError(
          "runner_deleted",
          `GitHub no longer has this runner (${error.kind}: ${error.detail})`,
          "register again: solstice-github-runner register",
        ),
      };
    }
    if (error.status === 401) return { action: "reauth" };
    if (error.status === 429)
      return { action: "wait", ...(error.retryAfterMs !== undefined ? { ms: error.retryAfterMs } : {}) };
    return { action: "wait" };
  }
  if (error instanceof HttpUnreachableError) return { action: "wait" };
  return { action: "wait" };
}

/**
 * The long-running runner: one session, one long poll at a time (Online while idle, Busy while
 * its one job runs, so cancellations reach it), each job run in the fleet by runGitHubJob.
 * Transient failures back off from one second, doubling up to a minute; a 401 renews
 * the token, an expired session is re-created, a deleted runner stops the daemon with the reason.
 */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const { config, registration, bus } = opts;
  const { settings, credentials, key } = registration;
  const log = opts.log.child({ runner: settings.agentName });
  const labels = checkLabels(settings.solsticeLabels);
  const fleetLabel = fleetLabelOf(labels);
  const owner = config.owner ?? defaultOwnerName(registration);
  const tokens = new RunnerTokenSource(credentials, key, log);
  const listener = new MessageListener({ settings, tokens, key, pollTimeoutMs: config.pollTimeoutMs });
  const tenant = settings.serverUrl
    ? { vss: new VssClient(settings.serverUrl, tokens), poolId: settings.poolId }
    : undefined;
  const events: OwnerEvents = await followOwnerEvents(bus, owner);

  const stopping = new AbortController();
  let poll = new AbortController();
  let current: { githubJobId: string; cancel: AbortController; done: Promise<unknown> } | undefined;
  let listening = false;
  let ended: DaemonEnd | undefined;
  const end = (why: DaemonEnd) => {
    ended ??= why;
    stopping.abort();
    poll.abort();
  };

  // Short, growing waits after failed calls; GitHub's own Retry-After wins when it asks for more.
  const errorBackoff = new Backoff(config.errorBackoffMs, config.maxErrorBackoffMs);
  const waitAfter = (suggested?: number) => Math.max(suggested ?? 0, errorBackoff.next());

  const startJob = (message: ReturnType<typeof parseJobMessage>, flow: "broker" | "classic") => {
    const cancel = new AbortController();
    const jobLog = log.child({ github_job_id: message.jobId, job: message.jobDisplayName });
    const done = runGitHubJob({
      message,
      flow,
      ...(tenant ? { tenant } : {}),
      bus,
      events,
      owner,
      fleetLabel,
      runnerName: settings.agentName,
      log: jobLog,
      cancel: cancel.signal,
      ...(opts.keyring ? { keyring: opts.keyring } : {}),
      timings: {
        reportIntervalMs: config.reportIntervalMs,
        renewIntervalMs: config.renewIntervalMs,
        leaseMs: config.leaseMs,
        maxAttempts: config.maxAttempts,
        queueTimeoutMs: config.queueTimeoutMs,
        cancelGraceMs: config.cancelGraceMs,
      },
    })
      .then((conclusion) => opts.onJobDone?.(conclusion))
      .catch((error: unknown) => jobLog.error({ err: error }, "job relay failed"))
      .finally(() => {
        current = undefined;
        if (settings.ephemeral) end({ reason: "ephemeral_done" });
        // Poll again at once, now as Online.
        poll.abort();
      });
    current = { githubJobId: message.jobId.toLowerCase(), cancel, done };
    // Poll again at once, now as Busy.
    poll.abort();
  };

  // The broker delivered the job once: a transient failure to acquire it must not lose it.
  const acquireWithRetry = async (ref: ReturnType<typeof parseJobRequestRef>) => {
    const backoff = new Backoff(1000, 15_000);
    for (let attempt = 1; ; attempt++) {
      try {
        return await acquireJob(ref, tokens, stopping.signal);
      } catch (error) {
        const decision = classify(error);
        if (attempt >= 8 || decision.action === "fatal" || stopping.signal.aborted) throw error;
        const wait = decision.action === "wait" && decision.ms !== undefined ? decision.ms : backoff.next();
        log.warn({ err: (error as Error).message, retry_in_ms: wait }, "acquirejob failed; retrying");
        await sleep(wait, stopping.signal);
      }
    }
  };

  const handle = async (message: RunnerMessage) => {
    let keepMessage = false;
    try {
      switch (message.messageType) {
        case "PipelineAgentJobRequest": {
          if (current) {
            // Not deleted: the service hands it to the runner again, as the official runner relies on.
            keepMessage = true;
            log.warn("a job arrived while one runs; leaving it to the service");
            return;
          }
          const job = parseJobMessage(JSON.parse(message.body));
          await listener.deleteMessage(message);
          keepMessage = true;
          startJob(job, "classic");
          return;
        }
        case "RunnerJobRequest": {
          if (current) {
            log.warn("a job arrived while one runs; not acquiring it");
            return;
          }
          const ref = parseJobRequestRef(message.body);
          if (ref.shouldAcknowledge) {
            await listener
              .acknowledge(message, ref.runnerRequestId, "Online")
              .catch((error: unknown) =>
                log.warn({ err: (error as Error).message }, "acknowledge failed (best effort)"),
              );
          }
          const acquired = await acquireWithRetry(ref);
          if ("skipped" in acquired) {
            log.info({ reason: acquired.skipped }, "job not acquired; skipping it");
            return;
          }
          startJob(parseJobMessage(acquired.message), "broker");
          return;
        }
        case "JobCancellation": {
          const jobId = (str(prop(JSON.parse(message.body), "jobId")) ?? "").toLowerCase();
          if (current && current.githubJobId === jobId) {
            log.info({ github_job_id: jobId }, "GitHub cancelled the job");
            current.cancel.abort(new Error("cancelled in GitHub"));
          }
          return;
        }
        case "RunnerShutdown":
          log.info("GitHub asked the runner to shut down");
          end({ reason: "shutdown_requested" });
          return;
        case "ForceTokenRefresh":
          tokens.invalidate();
          return;
        default:
          // AgentRefresh/RunnerRefresh (self-update: we never update), RunnerRefreshConfig and the like.
          log.debug({ type: message.messageType }, "message ignored");
          return;
      }
    } finally {
      if (!keepMessage) {
        await listener
          .deleteMessage(message)
          .catch((error: unknown) => log.warn({ err: (error as Error).message }, "could not delete the message"));
      }
    }
  };

  const openSession = async (): Promise<boolean> => {
    const conflictSince = Date.now();
    let unauthorized = 0;
    for (;;) {
      if (stopping.signal.aborted) return false;
      try {
        await listener.createSession(stopping.signal);
        log.info({ flow: listener.flow }, "connected to GitHub; listening for jobs");
        return true;
      } catch (error) {
        if (stopping.signal.aborted) return false;
        if (error instanceof GitHubRunnerError && error.code === "session_conflict") {
          if (Date.now() - conflictSince >= config.sessionConflictLimitMs) {
            end({ reason: "fatal", error });
            return false;
          }
        } else {
          const decision = classify(error);
          if (decision.action === "fatal") {
            end({ reason: "fatal", error: decision.error });
            return false;
          }
          if (decision.action === "reauth" || (error instanceof HttpStatusError && error.status === 401)) {
            tokens.invalidate();
            if (++unauthorized >= 3) {
              end({ reason: "fatal", error: credentialsRefused(error) });
              return false;
            }
            continue;
          }
        }
        log.warn(
          { err: (error as Error).message, retry_in_ms: config.sessionRetryMs },
          "could not create a session; retrying",
        );
        await sleep(config.sessionRetryMs, stopping.signal);
      }
    }
  };

  const loop = async () => {
    let failures = 0;
    let unauthorized = 0;
    while (!stopping.signal.aborted) {
      if (!listener.hasSession && !(await openSession())) break;
      listening = true;
      if (!bus.connected && !current) {
        // A job taken now could not be handed to the fleet.
        await sleep(500, stopping.signal);
        continue;
      }
      poll = new AbortController();
      try {
        const message = await listener.getMessage(
          current ? "Busy" : "Online",
          AbortSignal.any([poll.signal, stopping.signal]),
        );
        failures = 0;
        unauthorized = 0;
        errorBackoff.reset();
        if (message) await handle(message);
      } catch (error) {
        if (stopping.signal.aborted) break;
        if (poll.signal.aborted) continue;
        const decision = classify(error);
        switch (decision.action) {
          case "fatal":
            end({ reason: "fatal", error: decision.error });
            break;
          case "new_session":
            log.info("GitHub expired the session; creating a new one");
            listener.dropSession();
            break;
          case "reauth":
            tokens.invalidate();
            if (++unauthorized >= 3) {
              end({ reason: "fatal", error: credentialsRefused(error) });
            }
            break;
          case "wait": {
            failures++;
            const wait = waitAfter(decision.ms);
            log.warn(
              { err: (error as Error).message, retry_in_ms: Math.round(wait), failures },
              "GitHub call failed; backing off",
            );
            await sleep(wait, stopping.signal);
            break;
          }
        }
      }
    }
    listening = false;
  };

  const running = loop();
  const done = running.then(async () => {
    const why = ended ?? { reason: "stopped" as const };
    if (why.reason === "fatal") log.error({ err: why.error?.message }, "the runner stopped");
    return why;
  });

  let stopped: Promise<void> | undefined;
  const stop = async (graceMs: number) => {
    end({ reason: "stopped" });
    await running;
    const job = current;
    if (job) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([job.done, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      if (current) {
        job.cancel.abort(new Error("the runner is shutting down"));
        await job.done;
      }
    }
    await listener
      .deleteSession()
      .catch((error: unknown) => log.warn({ err: (error as Error).message }, "could not delete the session"));
    await events.stop();
  };

  return {
    get busy() {
      return current !== undefined;
    },
    get listening() {
      return listening;
    },
    done,
    stop(graceMs = config.shutdownGraceMs) {
      stopped ??= stop(graceMs);
      return stopped;
    },
  };
}

/** The end of a runner whose token GitHub refused three times in a row. */
function credentialsRefused(cause: unknown): GitHubRunnerError {
  return new GitHubRunnerError(
    "credentials_refused",
    "GitHub keeps refusing the runner's token",
    "register the runner again",
    { cause },
  );
}
