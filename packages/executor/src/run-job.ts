import type { ImageProgress } from "@solstice/images";
import { type FleetKeyring, type JobRequest, Outcome, type PlannedStep } from "@solstice/protocol";
import type { GuestSession } from "@solstice/ssh";
import type { NetworkPolicy, Vm, VmBackend } from "@solstice/vm";
import type { Logger } from "pino";
import { type ActionsRuntimeEnv, NO_ACTIONS_RUNTIME, unsealActionsRuntime } from "./actions/actions-runtime.ts";
import { GuestActions } from "./actions/guest-actions.ts";
import {
  type ActionProvider,
  type ResolvedAction,
  releaseJobActions,
  resolveJobActions,
} from "./actions/job-actions.ts";
import { checkoutScript, type LocalCheckoutSource, tokenFilePath, uploadBundle } from "./checkout-step.ts";
import { clockCheckScript } from "./guest-clock.ts";
import {
  type GuestSetup,
  guestSetup,
  type PreparedGuest,
  preparedGuest,
  prepareGuest,
  rememberBasics,
  rememberedBasics,
} from "./guest-facts.ts";
import { type JobCacheAccess, type JobCacheSession, openJobCache } from "./job-cache-access.ts";
import type { JobEventStream } from "./job-events.ts";
import { type JobSecrets, unsealActionToken, unsealCheckoutToken, unsealJobSecrets } from "./job-secrets.ts";
import { startJobVm, type WarmVm } from "./job-vm.ts";
import { networkGate } from "./network-gate.ts";
import { plannedGithubContext } from "./step-environment.ts";
import { preflightError, preflightScript } from "./step-preflight.ts";
import { type ResolvedStep, resolveDirectory, StepRuntime } from "./step-runtime.ts";
import type { Annotation } from "./workflow-commands.ts";

export interface RunJobOptions {
  readonly job: JobRequest;
  readonly backend: VmBackend;
  readonly events: JobEventStream;
  /** Cancels the job: the running step is stopped and the VM destroyed. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** In a local run, the developer's commit to check out instead of fetching the repository. */
  readonly localCheckout?: LocalCheckoutSource;
  /** How often a Heartbeat event tells the owner the job is alive (default 5 s). */
  readonly heartbeatIntervalMs?: number;
  /**
   * Transient progress of the long phases (image build or download, boot), for a status line
   * on a terminal. Without it, image progress becomes throttled system log lines.
   */
  readonly status?: (text: string) => void;
  /**
   * A VM booted ahead of the job (from the orchestrator's warm pool), which the job now owns and
   * destroys; without it the job boots a fresh one.
   */
  readonly warm?: WarmVm;
  /** Unseals the job's secrets; a job with secrets fails before booting without it. */
  readonly keyring?: Pick<FleetKeyring, "unseal">;
  /**
   * Asked when the job failed, before its VM is destroyed, with the step session still open:
   * resolving true takes the VM over (debug SSH), and the caller then owns its `destroy()`.
   */
  readonly keepFailedVm?: (failed: FailedVm) => Promise<boolean>;
  /** The label's network policy (default outbound); see `networkGate`. */
  readonly networkPolicy?: NetworkPolicy;
  /** Fetches the actions `uses:` steps name and the Node runtime for them; a job with such steps fails without it. */
  readonly actions?: ActionProvider;
  /** This host's job cache (docs/decisions/0007); without it `actions/cache` finds no cache service. */
  readonly jobCache?: JobCacheAccess;
}

export interface StepResult {
  readonly index: number;
  readonly name: string;
  readonly outcome: Outcome;
  readonly conclusion: Outcome;
  readonly exitCode: number;
  readonly durationMs: number;
  readonly reason: string;
  /** From GITHUB_OUTPUT (and the deprecated ::set-output). */
  readonly outputs?: Record<string, string>;
  readonly annotations?: Annotation[];
}

export interface JobResult {
  readonly result: Outcome;
  readonly reason: string;
  readonly steps: StepResult[];
  /** The job's `outputs:`, evaluated after its steps. */
  readonly outputs?: Record<string, string>;
  readonly bootMs?: number;
  readonly accelerator?: "kvm" | "tcg";
}

/** The shell for Solstice's own step scripts (checkout): POSIX sh is in every guest. */
const SYSTEM_SHELL = "sh -e {0}";

/**
 * Runs one job attempt end to end: image, fresh VM, steps over SSH in order, events for every
 * boundary and line, and the VM destroyed in every outcome. Used by the orchestrator and by the
 * local `ciadm run`, with different event sinks.
 */
/**
 * How long the steps that run after a cancel or the job's timeout (`always()`, `cancelled()`) may
 * take in all: GitHub's documented cancellation timeout, after which it terminates what still runs.
 */
export const CLEANUP_BUDGET_MS = 5 * 60 * 1000;

/**
 * The reason to abort a job with when a person cancelled it (the forge, `ciadm cancel`, Ctrl-C):
 * its `always()` and `cancelled()` steps still run. Any other reason (the host shuts down or lost
 * the broker) stops the job at once.
 */
export class GracefulCancel extends Error {
  override readonly name = "GracefulCancel";
}

export async function runJob(options: RunJobOptions): Promise<JobResult> {
  const { job, backend, events, log } = options;
  const jobTimeoutMs = Math.max(1, job.timeoutSeconds) * 1000;
  const timeout = AbortSignal.timeout(jobTimeoutMs);
  const signal = AbortSignal.any([options.signal, timeout]);
  const heartbeat = setInterval(() => {
    events.heartbeat().catch((error: unknown) => log.warn({ err: error }, "heartbeat not published"));
  }, options.heartbeatIntervalMs ?? 5_000);

  const steps: StepResult[] = [];
  let vm: Vm | undefined;
  let session: GuestSession | undefined;
  let result: Outcome = Outcome.SUCCESS;
  let reason = "";
  let secrets: JobSecrets = new Map();
  let actionsRuntime: ActionsRuntimeEnv = NO_ACTIONS_RUNTIME;
  let runtime: StepRuntime | undefined;
  let failed = false;
  let cache: JobCacheSession | undefined;
  let actions = new Map<string, ResolvedAction>();
  /** Whether the warm VM went to startJobVm, which uses it or destroys it. */
  let warmPassedOn = false;
  try {
    // First of all, so every line below is masked, errors included.
    secrets = unsealJobSecrets(job, options.keyring, events.masker);
    actionsRuntime = unsealActionsRuntime(job, options.keyring, events.masker);
    actions = await fetchJobActions(options, signal);
    cache = openJobCache(options.jobCache, job, actions.size > 0, events.masker);
    const status = options.status;
    warmPassedOn = true;
    const started = await startJobVm({
      job,
      backend,
      events,
      signal,
      log,
      progress: status ? statusProgress(status) : throttledProgress(events),
      ...(status ? { status } : {}),
      ...(options.warm ? { warm: options.warm } : {}),
    });
    vm = started.vm;
    session = started.session;
    const event = plannedGithubContext(job).event;
    // A VM that waited in the warm pool gets its clock checked. When the guest's basics are known
    // (the pool learned them, or an earlier job on a guest of the same identity did), the job's
    // setup rides on its first step's round trip; otherwise one round trip learns and sets up.
    const clock = started.warm ? clockCheckScript(new Date()) : "";
    const known = (started.warm ? options.warm?.basics : undefined) ?? rememberedBasics(vm.guestIdentity);
    let guest: PreparedGuest;
    let setup: GuestSetup | undefined;
    if (known) {
      guest = preparedGuest(known, job);
      setup = guestSetup(guest, event, clock);
    } else {
      const prepared = await prepareGuest(session, job, event, signal, clock);
      guest = prepared.guest;
      rememberBasics(vm.guestIdentity, prepared.basics);
    }
    const workspace = guest.workspace;
    // Under the workflow's env (secrets among it, see StepRuntime): CI may be overridden, as on GitHub.
    const baseEnv = { CI: "true", HOME: guest.home };
    runtime = new StepRuntime(job, guest, { addMask: (value) => events.masker.add(value) }, setup, secrets);
    await runtime.start(session, signal);
    const network = networkGate(options.networkPolicy, job, events);
    const guestActions =
      actions.size > 0 && options.actions
        ? new GuestActions(
            actions,
            options.actions,
            guest,
            session,
            runtime,
            events,
            secrets,
            vm.guestNode,
            // A GitHub job gets no host cache (job-cache-access.ts), so the forge's values and the
            // host's never name the same variable; the forge's would win if they did.
            { ...cache.variables, ...actionsRuntime.action },
          )
        : undefined;
    if (guestActions) {
      guestActions.prefetch(signal);
      await runtime.flushSetup(session, signal);
      failed = !(await runPres(guestActions, job, runtime, session, signal, baseEnv));
    }

    // After a person's cancel or the job's timeout, steps whose `if:` asks for it (`always()`,
    // `cancelled()`) still run, as on GitHub, within a cleanup budget of their own.
    let cleanup: AbortSignal | undefined;
    const cleanupSignal = () => {
      cleanup ??= AbortSignal.timeout(CLEANUP_BUDGET_MS);
      return cleanup;
    };
    for (const step of job.steps) {
      await network.beforeStep(step, started.vm);
      const cancelled = signal.aborted;
      const canClean = cancelled && (timeout.aborted || options.signal.reason instanceof GracefulCancel);
      const stepSignal = cancelled && canClean ? cleanupSignal() : signal;
      let runs: boolean;
      try {
        runs =
          (!cancelled || (canClean && !stepSignal.aborted)) &&
          (await runtime.shouldRun(step, { jobFailed: failed, cancelled }, session, stepSignal));
      } catch (error) {
        // As on GitHub, an `if:` that cannot be evaluated fails its step.
        const failedStep = await failStep(events, runtime, step, error);
        steps.push(failedStep);
        if (failedStep.conclusion === Outcome.FAILURE) failed = true;
        continue;
      }
      if (!runs) {
        runtime.record(step, {}, Outcome.SKIPPED, Outcome.SKIPPED);
        steps.push(
          await skipStep(
            events,
            step,
            cancelled ? "the job was cancelled" : `condition not met: ${step.condition || "success()"}`,
          ),
        );
        continue;
      }
      const stepResult = await runStep({
        step,
        session,
        events,
        signal: stepSignal,
        cancelled,
        job,
        workspace,
        baseEnv,
        secrets,
        scriptRuntimeEnv: actionsRuntime.script,
        options,
        runtime,
        failed,
        guestActions,
      });
      steps.push(stepResult);
      if (stepResult.conclusion === Outcome.FAILURE) failed = true;
    }
    if (guestActions) {
      // Post steps run after a failure or a cancel too, within the cleanup budget after a cancel.
      const cancelled = signal.aborted;
      const postSignal = cancelled ? cleanupSignal() : signal;
      if (!(await guestActions.runPosts({ jobFailed: failed, cancelled }, postSignal))) failed = true;
    }
    if (timeout.aborted) {
      result = Outcome.FAILURE;
      reason = `the job exceeded its timeout of ${formatDuration(jobTimeoutMs)}`;
    } else if (options.signal.aborted) {
      result = Outcome.CANCELLED;
      reason = String(
        options.signal.reason instanceof Error ? options.signal.reason.message : (options.signal.reason ?? "cancelled"),
      );
    } else if (failed) {
      const first = steps.find((s) => s.conclusion === Outcome.FAILURE);
      result = Outcome.FAILURE;
      reason = first ? `step "${first.name}" failed${first.reason ? `: ${first.reason}` : ""}` : "a step failed";
    }
  } catch (error) {
    result = options.signal.aborted && !timeout.aborted ? Outcome.CANCELLED : Outcome.FAILURE;
    reason = timeout.aborted
      ? `the job exceeded its timeout of ${formatDuration(jobTimeoutMs)}`
      : error instanceof Error
        ? error.message
        : String(error);
    events.line(`Error: ${reason}`, "system");
    log.warn({ err: error }, "job ended before its steps completed");
    for (const step of job.steps.slice(steps.length)) steps.push(await skipStep(events, step, "the job ended early"));
  } finally {
    clearInterval(heartbeat);
    await cache?.close().catch((error: unknown) => log.warn({ err: error }, "closing the job's cache access failed"));
    if (options.actions) releaseJobActions(options.actions, actions);
    const kept = await offerFailedVm(options, result, vm, session);
    session?.close();
    // Teardown must finish even when the job was cancelled: destroy() takes no signal.
    if (!kept) await vm?.destroy().catch((error: unknown) => log.error({ err: error }, "VM teardown failed"));
    // The job owns the warm VM it was handed: one that ended before its VM started (an action
    // refused, a secret that does not unseal) must not leave that VM running.
    if (options.warm && !warmPassedOn) {
      options.warm.session?.close();
      await options.warm.vm.destroy().catch((error: unknown) => log.error({ err: error }, "warm VM teardown failed"));
    }
  }
  let outputs: Record<string, string> = {};
  try {
    outputs = runtime?.jobOutputs({ jobFailed: failed, cancelled: options.signal.aborted }) ?? {};
  } catch (error) {
    result = Outcome.FAILURE;
    reason = error instanceof Error ? error.message : String(error);
    events.line(`Error: ${reason}`, "system");
  }
  await events.jobFinished(result, reason, outputs);
  await events.drain();
  return { result, reason, steps, outputs, ...(vm ? { bootMs: vm.bootMs, accelerator: vm.accelerator } : {}) };
}

/** A failed job's VM, offered to `keepFailedVm` before it is destroyed. */
export interface FailedVm {
  readonly job: JobRequest;
  readonly vm: Vm;
  readonly session: GuestSession;
  readonly events: JobEventStream;
}

async function offerFailedVm(
  options: RunJobOptions,
  result: Outcome,
  vm: Vm | undefined,
  session: GuestSession | undefined,
): Promise<boolean> {
  if (!options.keepFailedVm || !vm || !session || result !== Outcome.FAILURE || options.signal.aborted) return false;
  try {
    return await options.keepFailedVm({ job: options.job, vm, session, events: options.events });
  } catch (error) {
    options.log.error({ err: error }, "keeping the failed VM for debugging failed; destroying it");
    options.events.line("Debug SSH: the VM could not be kept; it is destroyed", "system");
    return false;
  }
}

interface StepContext {
  readonly step: PlannedStep;
  readonly session: GuestSession;
  readonly events: JobEventStream;
  readonly signal: AbortSignal;
  readonly job: JobRequest;
  readonly workspace: string;
  readonly baseEnv: Record<string, string>;
  readonly secrets: JobSecrets;
  /** The forge's OIDC pair, which `run:` steps get as on GitHub (actions get more, see GuestActions). */
  readonly scriptRuntimeEnv: Readonly<Record<string, string>>;
  readonly options: RunJobOptions;
  readonly runtime: StepRuntime;
  /** An earlier step failed, for job.status and the status functions in this step's expressions. */
  readonly failed: boolean;
  /** The job was cancelled before this step: it runs as cleanup (`always()`, `cancelled()`). */
  readonly cancelled: boolean;
  /** Runs `uses:` steps; absent when the job has none. */
  readonly guestActions: GuestActions | undefined;
}

async function runStep(ctx: StepContext): Promise<StepResult> {
  const { step, session, events } = ctx;
  const started = Date.now();
  const stepTimeoutMs = step.timeoutSeconds > 0 ? step.timeoutSeconds * 1000 : undefined;
  const stepTimeout = stepTimeoutMs ? AbortSignal.timeout(stepTimeoutMs) : undefined;
  const signal = stepTimeout ? AbortSignal.any([ctx.signal, stepTimeout]) : ctx.signal;
  let commands: ReturnType<StepRuntime["commandReader"]> | undefined;
  let resolved: Awaited<ReturnType<StepRuntime["resolve"]>> | undefined;
  let unresolved: unknown;
  try {
    resolved = await ctx.runtime.resolve(step, { jobFailed: ctx.failed, cancelled: ctx.cancelled }, session, signal);
  } catch (error) {
    unresolved = error;
  }
  // Started under its name as evaluated just now (it may read env or steps), as the forge shows it.
  // Not awaited: the step's command starts while its start is recorded and published (a database
  // write and a broker confirm, 5–25 ms on every step's path). Events stay in order behind it, and
  // a failed publish is reported by `drain()` at the job's end, as any other event's.
  events.stepStarted(step.index, resolved?.name || step.name).catch(() => {});
  const onLine = (stream: "stdout" | "stderr", text: string, continued: boolean) => {
    // A piece of an overlong line is not a workflow command; it is logged as is.
    const display = commands === undefined || continued ? text : commands.line(text).display;
    if (display !== undefined) events.line(display, stream, new Date(), continued);
  };

  let outcome: Outcome;
  let exitCode = -1;
  let reason = "";
  let actionOutputs: Record<string, string> | undefined;
  try {
    if (resolved === undefined) throw unresolved;
    const env = { ...ctx.baseEnv, ...resolved.env, ...resolved.runnerEnv };
    commands = ctx.runtime.commandReader(step, env);
    const run =
      step.action.case === "uses"
        ? await runAction(ctx, resolved, env, signal, onLine)
        : await runCommand(ctx, resolved, { ...env, ...ctx.scriptRuntimeEnv }, signal, onLine);
    if (run.refused) throw preflightError(run.refused, resolved.preflight);
    actionOutputs = run.outputs;
    if (stepTimeout?.aborted && !ctx.signal.aborted) {
      outcome = Outcome.FAILURE;
      reason = `timed out after ${formatDuration(stepTimeoutMs ?? 0)} (timeout-minutes)`;
    } else if (run.aborted || ctx.signal.aborted) {
      outcome = Outcome.CANCELLED;
      reason = "cancelled";
    } else {
      exitCode = run.exitCode ?? -1;
      outcome = exitCode === 0 ? Outcome.SUCCESS : Outcome.FAILURE;
      if (exitCode !== 0) reason = run.exitCode === null ? "the step's process was killed" : `exit code ${exitCode}`;
    }
  } catch (error) {
    outcome = ctx.signal.aborted ? Outcome.CANCELLED : Outcome.FAILURE;
    reason = error instanceof Error ? error.message : String(error);
    events.line(`Error: ${reason}`, "system");
  }
  let outputs: Record<string, string> = {};
  if (resolved !== undefined && !ctx.signal.aborted) {
    try {
      const concluded = outcome === Outcome.FAILURE && step.continueOnError ? Outcome.SUCCESS : outcome;
      const files = await ctx.runtime.finish(
        step,
        resolved,
        { outcome, conclusion: concluded, ...(actionOutputs ? { outputs: actionOutputs } : {}) },
        session,
        ctx.signal,
      );
      outputs = files.outputs;
      if (files.summary.trim() !== "") {
        events.line("Step summary:", "system");
        for (const line of files.summary.replace(/\n$/, "").split("\n")) events.line(line, "system");
      }
    } catch (error) {
      if (outcome === Outcome.SUCCESS) outcome = Outcome.FAILURE;
      reason = error instanceof Error ? error.message : String(error);
    }
  }
  // The name as evaluated just before the step, as the forge shows it.
  const name = resolved?.name || step.name;
  if (outcome === Outcome.FAILURE && reason) events.line(`Step "${name}" failed: ${reason}`, "system");
  const conclusion = outcome === Outcome.FAILURE && step.continueOnError ? Outcome.SUCCESS : outcome;
  if (conclusion !== outcome) events.line("continue-on-error: the job goes on", "system");
  ctx.runtime.record(step, outputs, outcome, conclusion);
  await events.stepFinished(step.index, { outcome, conclusion, exitCode, reason, outputs });
  return {
    index: step.index,
    name,
    outcome,
    conclusion,
    exitCode,
    reason,
    outputs,
    annotations: commands?.annotations ?? [],
    durationMs: Date.now() - started,
  };
}

type OnLine = (stream: "stdout" | "stderr", text: string, continued: boolean) => void;

interface CommandRun {
  readonly exitCode: number | null;
  readonly aborted: boolean;
  readonly refused?: string[];
  readonly outputs?: Record<string, string>;
}

/** A `run:` or checkout step: one script, which carries the job's setup if nothing has yet. */
async function runCommand(
  ctx: StepContext,
  resolved: ResolvedStep,
  env: Record<string, string>,
  signal: AbortSignal,
  onLine: OnLine,
): Promise<CommandRun> {
  const { script, shell, files } = await stepCommand(ctx, resolved);
  const setup = ctx.runtime.takeSetup();
  const run = await ctx.session
    .runScript({
      script,
      shell,
      env,
      workingDirectory: resolveDirectory(ctx.workspace, resolved.workingDirectory),
      signal,
      onLine,
      prelude: [...(setup ? [setup.prelude] : []), preflightScript(resolved.preflight)].join("\n"),
      files: [...(setup?.files ?? []), ...files],
    })
    .catch((error: unknown) => {
      if (setup) ctx.runtime.returnSetup(setup);
      throw error;
    });
  if (setup && (run.aborted || run.refused?.includes("setup"))) ctx.runtime.returnSetup(setup);
  return run;
}

/** A `uses:` step: the action's code (or a composite action's steps) in the guest. */
async function runAction(
  ctx: StepContext,
  resolved: ResolvedStep,
  env: Record<string, string>,
  signal: AbortSignal,
  onLine: OnLine,
): Promise<CommandRun> {
  if (!ctx.guestActions) throw new Error("this host runs no actions (no action provider was configured)");
  await ctx.runtime.flushSetup(ctx.session, signal);
  return ctx.guestActions.runMain({
    step: ctx.step,
    resolved,
    env,
    status: { jobFailed: ctx.failed, cancelled: ctx.cancelled },
    signal,
    onLine,
  });
}

/**
 * Fetches the job's actions on the host before its VM boots (so a Docker action or an unknown ref
 * fails the job with no VM), saying for each whether it came from the cache.
 */
async function fetchJobActions(options: RunJobOptions, signal: AbortSignal): Promise<Map<string, ResolvedAction>> {
  const { job, events } = options;
  if (!job.steps.some((step) => step.action.case === "uses")) return new Map();
  if (!options.actions) throw new Error("this host runs no actions: it was started without an action provider");
  const started = Date.now();
  const actions = await resolveJobActions(
    job,
    options.actions,
    signal,
    unsealCheckoutToken(job, options.keyring),
    (archive) => unsealActionToken(job, archive, options.keyring),
  );
  for (const action of actions.values()) {
    const { fetched } = action;
    events.line(
      `Action ${action.uses}: ${fetched.repository}@${fetched.commit.slice(0, 12)} (${action.manifest.runs.using}), ${fetched.cached ? "from the host's cache" : "downloaded"}`,
      "system",
    );
  }
  options.log.info({ actions: actions.size, ms: Date.now() - started }, "actions ready");
  return actions;
}

/** The `pre` of every action step, before the first step, in order; false if one failed. */
async function runPres(
  guestActions: GuestActions,
  job: JobRequest,
  runtime: StepRuntime,
  session: GuestSession,
  signal: AbortSignal,
  baseEnv: Record<string, string>,
): Promise<boolean> {
  const status = { jobFailed: false, cancelled: false };
  for (const step of job.steps) {
    if (step.action.case !== "uses") continue;
    const resolved = await runtime.resolve(step, status, session, signal);
    const env = { ...baseEnv, ...resolved.env, ...resolved.runnerEnv };
    if (!(await guestActions.runPre({ step, resolved, env, status, signal, onLine: () => {} }))) return false;
  }
  return true;
}

/** What a step runs: its script and shell, and files written just before it (a checkout's token). */
interface StepCommand {
  readonly script: string;
  readonly shell: string;
  readonly files: { path: string; content: string; mode: number }[];
}

async function stepCommand(ctx: StepContext, resolved: { script?: string; shell?: string }): Promise<StepCommand> {
  const { step, job, workspace, session, options } = ctx;
  if (step.action.case === "run") {
    return {
      script: resolved.script ?? step.action.value.script,
      shell: resolved.shell ?? step.action.value.shell,
      files: [],
    };
  }
  if (step.action.case === "checkout") {
    const checkout = step.action.value;
    const dest = resolveDirectory(workspace, checkout.path);
    const local = options.localCheckout
      ? { bundlePath: await uploadBundle(session, options.localCheckout, job.jobId), ref: options.localCheckout.ref }
      : undefined;
    // The token reaches the guest only as a file only its owner reads; git's credential helper reads it there.
    const token = checkout.tokenSecret
      ? ctx.secrets.get(checkout.tokenSecret)
      : unsealCheckoutToken(job, options.keyring);
    const tokenFile = token ? tokenFilePath(job, step.index) : undefined;
    return {
      script: checkoutScript(job, checkout, dest, { ...(local ? { local } : {}), ...(tokenFile ? { tokenFile } : {}) }),
      shell: SYSTEM_SHELL,
      files: token && tokenFile ? [{ path: tokenFile, content: token, mode: 0o600 }] : [],
    };
  }
  throw new Error(`step ${step.index} has no action this version of Solstice can run`);
}

/** A step that failed before it could start (its `if:` could not be evaluated). */
async function failStep(
  events: JobEventStream,
  runtime: StepRuntime,
  step: PlannedStep,
  error: unknown,
): Promise<StepResult> {
  const reason = error instanceof Error ? error.message : String(error);
  await events.stepStarted(step.index, step.name);
  events.line(`Error: ${reason}`, "system");
  const conclusion = step.continueOnError ? Outcome.SUCCESS : Outcome.FAILURE;
  runtime.record(step, {}, Outcome.FAILURE, conclusion);
  await events.stepFinished(step.index, { outcome: Outcome.FAILURE, conclusion, exitCode: -1, reason });
  return {
    index: step.index,
    name: step.name,
    outcome: Outcome.FAILURE,
    conclusion,
    exitCode: -1,
    durationMs: 0,
    reason,
  };
}

async function skipStep(events: JobEventStream, step: PlannedStep, why: string): Promise<StepResult> {
  await events.stepFinished(step.index, {
    outcome: Outcome.SKIPPED,
    conclusion: Outcome.SKIPPED,
    exitCode: -1,
    reason: why,
  });
  return {
    index: step.index,
    name: step.name,
    outcome: Outcome.SKIPPED,
    conclusion: Outcome.SKIPPED,
    exitCode: -1,
    durationMs: 0,
    reason: why,
  };
}

function progressText({ phase, detail, fraction }: Parameters<ImageProgress>[0]): string {
  const pct = fraction === undefined ? "" : ` ${Math.round(fraction * 100)}%`;
  return `image: ${phase}${pct}${detail ? ` (${detail})` : ""}`;
}

function statusProgress(status: (text: string) => void): ImageProgress {
  return (event) => status(progressText(event));
}

/** One system line per phase and per 10 % of progress, so a download does not flood the log. */
function throttledProgress(events: JobEventStream): ImageProgress {
  let lastPhase = "";
  let lastTenth = -1;
  return (event) => {
    const tenth = event.fraction === undefined ? -1 : Math.floor(event.fraction * 10);
    if (event.phase === lastPhase && tenth === lastTenth) return;
    lastPhase = event.phase;
    lastTenth = tenth;
    events.line(progressText(event), "system");
  };
}

export function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}
