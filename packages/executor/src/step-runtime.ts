import { type JobRequest, Outcome, type PlannedStep } from "@solstice/protocol";
import type { GuestSession } from "@solstice/ssh";
import {
  type ContextValues,
  DEFAULT_SHELL,
  type EvaluateOptions,
  evaluateCondition,
  findExpressions,
  interpolateText,
  type JobStatus,
} from "@solstice/workflow";
import type { GuestSetup, PreparedGuest } from "./guest-facts.ts";
import { hashFilesInGuest } from "./hash-files.ts";
import { type JobSecrets, secretEnvironment } from "./job-secrets.ts";
import {
  parseKeyValueFile,
  parsePathFile,
  type RunnerFileVariable,
  readRunnerFiles,
  runnerFilePaths,
} from "./runner-files.ts";
import {
  debugEnabled,
  runnerContext,
  runnerVariables,
  runtimeGithubContext,
  stepActionName,
  stepVariables,
} from "./step-environment.ts";
import type { StepPreflight } from "./step-preflight.ts";
import { type WorkflowCommandHooks, WorkflowCommandReader } from "./workflow-commands.ts";

/** The shell for the default `run:` shell when the guest has no bash, as the Actions runner does. */
const SH_FALLBACK = "sh -e {0}";

/**
 * Bound on evaluation rounds for one step's expressions: each round computes the hashFiles() calls
 * the previous one found, so only hashFiles() nested in hashFiles() needs more than two.
 */
const MAX_HASH_ROUNDS = 4;

const OUTCOME_NAMES: Partial<Record<Outcome, string>> = {
  [Outcome.SUCCESS]: "success",
  [Outcome.FAILURE]: "failure",
  [Outcome.CANCELLED]: "cancelled",
  [Outcome.SKIPPED]: "skipped",
};

interface StepContextEntry {
  outputs: Record<string, string>;
  outcome: string;
  conclusion: string;
}

/** What a step runs with, its expressions evaluated just before it starts. */
export interface ResolvedStep {
  name: string;
  script?: string;
  shell?: string;
  /** The workflow's variables for this step: job env < GITHUB_ENV additions < the step's env. */
  env: Record<string, string>;
  /**
   * What goes over the workflow's variables (and secrets): the runner's GITHUB_* and RUNNER_*
   * variables, which a workflow cannot override, and PATH with the GITHUB_PATH entries in front.
   */
  runnerEnv: Record<string, string>;
  workingDirectory: string;
  files: Record<RunnerFileVariable, string>;
  /** What the step's run must check and create before it starts (`preflightScript`). */
  preflight: StepPreflight;
  /** An action step's `with:`, evaluated (secret inputs are added by the caller, which holds them). */
  inputs?: Record<string, string>;
}

function parseContext(json: string, name: string): unknown {
  if (json === "") return null;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    throw new Error(`the job's ${name} context is not valid JSON; the planner that sent it is broken`);
  }
}

/** A directory as a step's working directory: relative ones are inside the workspace. */
export function resolveDirectory(workspace: string, dir: string | undefined): string {
  if (!dir) return workspace;
  return dir.startsWith("/") ? dir : `${workspace}/${dir}`;
}

/**
 * The state Actions keeps between the steps of one job: the steps context (outputs, outcome,
 * conclusion), variables and PATH entries added through GITHUB_ENV and GITHUB_PATH, and the
 * contexts expressions read. Expressions the planner left for run time are evaluated here, just
 * before each step, with hashFiles() computed in the guest.
 */
export class StepRuntime {
  private readonly steps: Record<string, StepContextEntry> = {};
  private readonly addedEnv: Record<string, string> = {};
  private readonly addedPath: string[] = [];
  private readonly base: Record<string, unknown>;
  private readonly runnerEnv: Record<string, string>;
  private jobEnv: Record<string, string> = {};
  private readonly filesDir: string;
  private readonly pendingOutputs = new Map<number, Record<string, string>>();

  /** The job's setup in the guest while no command has carried it yet (see `takeSetup`). */
  private setup: GuestSetup | undefined;

  constructor(
    private readonly job: JobRequest,
    private readonly guest: PreparedGuest,
    private readonly hooks: Omit<WorkflowCommandHooks, "setOutput" | "debug">,
    setup: GuestSetup | undefined,
    /** The job's unsealed secrets, for the secrets context and the env variables set from them. */
    private readonly secrets: JobSecrets = new Map(),
  ) {
    this.setup = setup;
    const c = job.contexts;
    const vars = parseContext(c?.varsJson ?? "", "vars");
    const debug = debugEnabled(vars);
    const github = runtimeGithubContext(job, guest);
    this.base = {
      github,
      vars,
      matrix: parseContext(c?.matrixJson ?? "", "matrix"),
      needs: parseContext(c?.needsJson ?? "", "needs"),
      inputs: parseContext(c?.inputsJson ?? "", "inputs"),
      strategy: parseContext(c?.strategyJson ?? "", "strategy"),
      runner: runnerContext(guest, debug),
      secrets: Object.fromEntries(secrets),
    };
    this.runnerEnv = runnerVariables(job, guest, github, debug);
    this.filesDir = `${guest.runnerTemp}/_runner_file_commands_${job.jobId}`;
  }

  /** The event payload GITHUB_EVENT_PATH points at. */
  get event(): unknown {
    return (this.base.github as Record<string, unknown>).event;
  }

  /** Evaluates the job env values the planner deferred (they read runner.*, hashFiles…), once, before any step. */
  async start(session: GuestSession, signal: AbortSignal): Promise<void> {
    const contexts = this.contexts({}, { jobFailed: false, cancelled: false });
    this.jobEnv = await this.withGuestHashes(session, signal, (options) =>
      Object.fromEntries(
        Object.entries(this.job.env).map(([name, value]) => [name, this.expand(value, contexts, options)]),
      ),
    );
  }

  /**
   * The contexts an action's own expressions read (its input defaults, `pre-if`/`post-if`, a
   * composite action's steps): those of `step`, with `env` as the env context.
   */
  actionContexts(step: PlannedStep, status: JobStatus, env: Record<string, string>): ContextValues {
    return this.contexts(env, status, step);
  }

  private contexts(env: Record<string, string>, status: JobStatus, step?: PlannedStep): ContextValues {
    const jobStatus = status.cancelled ? "cancelled" : status.jobFailed ? "failure" : "success";
    return {
      ...this.base,
      github: step ? this.stepGithub(step) : this.base.github,
      env,
      steps: this.steps,
      job: { status: jobStatus },
    };
  }

  /** The github context within one step: its name and its runner files too. */
  private stepGithub(step: PlannedStep): Record<string, unknown> {
    const files = runnerFilePaths(this.filesDir, step.index);
    return {
      ...(this.base.github as Record<string, unknown>),
      action: stepActionName(this.job, step),
      env: files.GITHUB_ENV,
      path: files.GITHUB_PATH,
      output: files.GITHUB_OUTPUT,
      step_summary: files.GITHUB_STEP_SUMMARY,
    };
  }

  private expand(text: string, contexts: ContextValues, options: EvaluateOptions): string {
    return findExpressions(text).length === 0 ? text : interpolateText(text, contexts, options);
  }

  /**
   * Runs `compute` (which evaluates expressions) until every hashFiles() it calls has its value:
   * unknown calls answer "" and are computed in the guest, then `compute` runs again. A failure
   * caused by such a placeholder is retried too; one that remains with all values known is thrown.
   * The job's steps use it, and so do the steps of composite actions (GitHub's action.yml allows
   * hashFiles() in their `if`, `run`, `env`, `with`… and in input defaults).
   */
  async withGuestHashes<T>(
    session: GuestSession,
    signal: AbortSignal,
    compute: (options: EvaluateOptions) => T,
  ): Promise<T> {
    const known = new Map<string, string>();
    for (let round = 1; ; round++) {
      const missing = new Map<string, string[]>();
      const options: EvaluateOptions = {
        hashFiles: (args) => {
          const key = JSON.stringify(args);
          const value = known.get(key);
          if (value === undefined) missing.set(key, [...args]);
          return value ?? "";
        },
      };
      let outcome: { value: T } | { error: unknown };
      try {
        outcome = { value: compute(options) };
      } catch (error) {
        outcome = { error };
      }
      if (missing.size === 0 || round >= MAX_HASH_ROUNDS) {
        if ("error" in outcome) throw outcome.error;
        if (missing.size === 0) return outcome.value;
        throw new Error(`hashFiles() calls nest more than ${MAX_HASH_ROUNDS - 1} deep in one step`);
      }
      await this.flushSetup(session, signal);
      for (const [key, args] of missing) {
        known.set(key, await hashFilesInGuest(session, args, this.guest, signal));
      }
    }
  }

  /**
   * The step's env context, and the variables its process gets: job env < GITHUB_ENV additions <
   * the step's own variables, those set from secrets with their values (as on GitHub, an `if:` on
   * `env.TOKEN` sees the secret; every output is masked).
   */
  private envFor(step: PlannedStep, contexts: ContextValues, options: EvaluateOptions): Record<string, string> {
    const own: Record<string, string> = {};
    const inherited: Record<string, string> = {};
    for (const [name, value] of Object.entries(step.env)) {
      if (this.job.env[name] === value) inherited[name] = this.jobEnv[name] ?? value;
      else own[name] = value;
    }
    const ownSecrets = Object.fromEntries(
      Object.entries(step.secretEnv).filter(([name, secret]) => this.job.secretEnv[name] !== secret),
    );
    const env = {
      ...this.jobEnv,
      ...secretEnvironment(this.job.secretEnv, this.secrets),
      ...inherited,
      ...this.addedEnv,
    };
    // A step's own env may read the env context of the job, not of itself.
    const scoped = { ...contexts, env: { ...env } };
    for (const [name, value] of Object.entries(own)) env[name] = this.expand(value, scoped, options);
    return { ...env, ...secretEnvironment(ownSecrets, this.secrets) };
  }

  /**
   * The job's setup if no command has carried it yet, for the step about to run to carry (then it
   * is done, unless given back with `returnSetup`): a warm VM's job sets up its directories and
   * event payload on its first step's round trip instead of one of its own.
   */
  takeSetup(): GuestSetup | undefined {
    const setup = this.setup;
    this.setup = undefined;
    return setup;
  }

  /**
   * Gives back a setup `takeSetup` handed out whose command may not have carried it (it failed to
   * start, was aborted, or refused with `setup`), so the next command carries it again: the setup
   * makes directories and writes a file, so doing it twice is harmless, and never doing it (a
   * cancelled first step, then `always()` steps) is not.
   */
  returnSetup(setup: GuestSetup): void {
    this.setup ??= setup;
  }

  /** Runs the pending setup on its own, before a command that needs it and is not a step. */
  async flushSetup(session: GuestSession, signal: AbortSignal): Promise<void> {
    const setup = this.takeSetup();
    if (!setup) return;
    let done = false;
    try {
      const run = await session.runScript({
        script: ":",
        shell: "sh {0}",
        env: {},
        prelude: setup.prelude,
        files: setup.files,
        signal,
        onLine: () => {},
      });
      done = !run.refused && run.exitCode === 0;
    } finally {
      if (!done) this.returnSetup(setup);
    }
    if (!done) {
      throw new Error("could not prepare the guest: the job's directories or its event payload were not written");
    }
  }

  /** Decides the step's `if:`; throws ExpressionError or HashFilesError for one that cannot be evaluated. */
  shouldRun(step: PlannedStep, status: JobStatus, session: GuestSession, signal: AbortSignal): Promise<boolean> {
    const contexts = this.contexts({}, status, step);
    return this.withGuestHashes(session, signal, (options) =>
      evaluateCondition(step.condition, { ...contexts, env: this.envFor(step, contexts, options) }, status, options),
    );
  }

  /**
   * Evaluates the step's deferred expressions (hashFiles() in the guest) and says what its run
   * must check first. Throws ExpressionError or HashFilesError with a message naming the problem.
   */
  async resolve(
    step: PlannedStep,
    status: JobStatus,
    session: GuestSession,
    signal: AbortSignal,
  ): Promise<ResolvedStep> {
    const contexts = this.contexts({}, status, step);
    const files = runnerFilePaths(this.filesDir, step.index);
    return this.withGuestHashes(session, signal, (options): ResolvedStep => {
      const workflowEnv = this.envFor(step, contexts, options);
      const scoped = { ...contexts, env: workflowEnv };
      const basePath = workflowEnv.PATH ?? this.guest.path;
      const path = this.addedPath.length > 0 ? [...this.addedPath].reverse().concat(basePath).join(":") : undefined;
      const runnerEnv = {
        ...this.runnerEnv,
        ...stepVariables(this.job, step, files),
        ...(path === undefined ? {} : { PATH: path }),
      };
      const workingDirectory = this.expand(step.workingDirectory, scoped, options);
      const out: ResolvedStep = {
        name: this.expand(step.name, scoped, options),
        env: workflowEnv,
        runnerEnv,
        workingDirectory,
        files,
        preflight: { files, runsOn: this.job.runsOn },
      };
      if (step.action.case === "uses") {
        out.inputs = Object.fromEntries(
          Object.entries(step.action.value.inputs).map(([name, value]) => [name, this.expand(value, scoped, options)]),
        );
      }
      if (step.action.case === "run") {
        const shell = step.action.value.shell;
        out.script = this.expand(step.action.value.script, scoped, options);
        out.shell = shell === DEFAULT_SHELL && !this.guest.hasBash ? SH_FALLBACK : shell;
        out.preflight = {
          files,
          runsOn: this.job.runsOn,
          workingDirectory: {
            absolute: resolveDirectory(this.guest.workspace, workingDirectory),
            written: workingDirectory || this.guest.workspace,
          },
          shell: { template: out.shell, path: runnerEnv.PATH ?? workflowEnv.PATH ?? this.guest.path },
        };
      }
      return out;
    });
  }

  /** Reads one step's output lines for workflow commands. */
  commandReader(step: PlannedStep, env: Record<string, string>): WorkflowCommandReader {
    const debug = (env.ACTIONS_STEP_DEBUG ?? String(this.varsValue("ACTIONS_STEP_DEBUG") ?? "")) === "true";
    return new WorkflowCommandReader({
      ...this.hooks,
      debug,
      setOutput: (name, value) => {
        const outputs = this.pendingOutputs.get(step.index) ?? {};
        outputs[name] = value;
        this.pendingOutputs.set(step.index, outputs);
      },
    });
  }

  private varsValue(name: string): unknown {
    const vars = this.base.vars;
    return vars !== null && typeof vars === "object" ? (vars as Record<string, unknown>)[name] : undefined;
  }

  /**
   * Reads the step's runner files back and records its outputs, outcome and conclusion in the
   * steps context. Returns the outputs and the step summary.
   */
  async finish(
    step: PlannedStep,
    resolved: ResolvedStep,
    result: { outcome: Outcome; conclusion: Outcome; outputs?: Record<string, string> },
    session: GuestSession,
    signal: AbortSignal,
  ): Promise<{ outputs: Record<string, string>; summary: string }> {
    // A composite action's outputs come from its `outputs:`, evaluated after its steps.
    const outputs = { ...this.pendingOutputs.get(step.index), ...result.outputs };
    this.pendingOutputs.delete(step.index);
    let summary = "";
    try {
      const files = await readRunnerFiles(session, resolved.files, signal);
      Object.assign(outputs, parseKeyValueFile(files.GITHUB_OUTPUT, "GITHUB_OUTPUT"));
      Object.assign(this.addedEnv, parseKeyValueFile(files.GITHUB_ENV, "GITHUB_ENV"));
      this.addedPath.push(...parsePathFile(files.GITHUB_PATH));
      summary = files.GITHUB_STEP_SUMMARY;
    } finally {
      this.record(step, outputs, result.outcome, result.conclusion);
    }
    return { outputs, summary };
  }

  record(step: PlannedStep, outputs: Record<string, string>, outcome: Outcome, conclusion: Outcome): void {
    if (step.id === "") return;
    this.steps[step.id] = {
      outputs,
      outcome: OUTCOME_NAMES[outcome] ?? "failure",
      conclusion: OUTCOME_NAMES[conclusion] ?? "failure",
    };
  }

  /** The job's `outputs:`, evaluated after its steps; one that cannot be evaluated is an error naming it. */
  jobOutputs(status: JobStatus): Record<string, string> {
    const contexts = this.contexts(this.jobEnv, status);
    const outputs: Record<string, string> = {};
    for (const [name, text] of Object.entries(this.job.outputs)) {
      try {
        outputs[name] = this.expand(text, contexts, {});
      } catch (error) {
        throw new Error(`job output ${name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return outputs;
  }
}
