import { type JobRequest, Outcome, type PlannedStep } from "@solstice/protocol";
import type { SshSession } from "@solstice/ssh";
import {
  type ContextValues,
  DEFAULT_SHELL,
  evaluateCondition,
  findExpressions,
  interpolateText,
  type JobStatus,
} from "@solstice/workflow";
import {
  createRunnerFiles,
  parseKeyValueFile,
  parsePathFile,
  type RunnerFileVariable,
  readRunnerFiles,
  runnerFilePaths,
} from "./runner-files.ts";
import { type WorkflowCommandHooks, WorkflowCommandReader } from "./workflow-commands.ts";

/** The shell for the default `run:` shell when the guest has no bash, as the Actions runner does. */
const SH_FALLBACK = "sh -e {0}";

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
  env: Record<string, string>;
  workingDirectory: string;
  files: Record<RunnerFileVariable, string>;
}

function parseContext(json: string, name: string): unknown {
  if (json === "") return null;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    throw new Error(`the job's ${name} context is not valid JSON; the planner that sent it is broken`);
  }
}

/** Whether the guest has bash, and its PATH, asked once per job. */
export async function probeGuest(
  session: SshSession,
  signal: AbortSignal,
): Promise<{ hasBash: boolean; path: string }> {
  const lines: string[] = [];
  await session.exec('command -v bash >/dev/null 2>&1 && echo bash=yes || echo bash=no; printf "%s\\n" "$PATH"', {
    signal,
    onStdout: (line) => lines.push(line),
  });
  return { hasBash: lines[0] === "bash=yes", path: lines[1] || "/usr/local/bin:/usr/bin:/bin" };
}

/**
 * The state Actions keeps between the steps of one job: the steps context (outputs, outcome,
 * conclusion), variables and PATH entries added through GITHUB_ENV and GITHUB_PATH, and the
 * contexts expressions read. Expressions the planner left for run time are evaluated here, just
 * before each step.
 */
export class StepRuntime {
  private readonly steps: Record<string, StepContextEntry> = {};
  private readonly addedEnv: Record<string, string> = {};
  private readonly addedPath: string[] = [];
  private readonly base: Record<string, unknown>;
  private readonly jobEnv: Record<string, string>;
  private readonly filesDir: string;
  private readonly pendingOutputs = new Map<number, Record<string, string>>();

  constructor(
    private readonly job: JobRequest,
    private readonly guest: { hasBash: boolean; path: string; runnerTemp: string },
    private readonly hooks: Omit<WorkflowCommandHooks, "setOutput" | "debug">,
  ) {
    const c = job.contexts;
    this.base = {
      github: parseContext(c?.githubJson ?? "", "github"),
      vars: parseContext(c?.varsJson ?? "", "vars"),
      matrix: parseContext(c?.matrixJson ?? "", "matrix"),
      needs: parseContext(c?.needsJson ?? "", "needs"),
      inputs: parseContext(c?.inputsJson ?? "", "inputs"),
      strategy: parseContext(c?.strategyJson ?? "", "strategy"),
      runner: { os: "Linux", arch: "X64", name: "solstice", temp: guest.runnerTemp, environment: "self-hosted" },
      secrets: {},
    };
    this.filesDir = `${guest.runnerTemp}/_runner_file_commands_${job.jobId}`;
    // Job env values the planner deferred (they read runner.*) are evaluated once, before any step.
    const contexts = this.contexts({}, { jobFailed: false, cancelled: false });
    this.jobEnv = Object.fromEntries(
      Object.entries(job.env).map(([name, value]) => [name, this.expand(value, contexts)]),
    );
  }

  private contexts(env: Record<string, string>, status: JobStatus): ContextValues {
    const jobStatus = status.cancelled ? "cancelled" : status.jobFailed ? "failure" : "success";
    return { ...this.base, env, steps: this.steps, job: { status: jobStatus } };
  }

  private expand(text: string, contexts: ContextValues): string {
    return findExpressions(text).length === 0 ? text : interpolateText(text, contexts);
  }

  /** The step's env context: job env < GITHUB_ENV additions < the step's own variables. */
  private envFor(step: PlannedStep, contexts: ContextValues): Record<string, string> {
    const own: Record<string, string> = {};
    const inherited: Record<string, string> = {};
    for (const [name, value] of Object.entries(step.env)) {
      if (this.job.env[name] === value) inherited[name] = this.jobEnv[name] ?? value;
      else own[name] = value;
    }
    const env = { ...this.jobEnv, ...inherited, ...this.addedEnv };
    // A step's own env may read the env context of the job, not of itself.
    const scoped = { ...contexts, env };
    for (const [name, value] of Object.entries(own)) env[name] = this.expand(value, scoped);
    return env;
  }

  /** Decides the step's `if:`; throws ExpressionError for a condition that cannot be evaluated. */
  shouldRun(step: PlannedStep, status: JobStatus): boolean {
    const contexts = this.contexts({}, status);
    return evaluateCondition(step.condition, { ...contexts, env: this.envFor(step, contexts) }, status);
  }

  /** Evaluates the step's deferred expressions and creates its runner files in the guest. */
  async resolve(step: PlannedStep, status: JobStatus, session: SshSession, signal: AbortSignal): Promise<ResolvedStep> {
    const contexts = this.contexts({}, status);
    const env = this.envFor(step, contexts);
    const scoped = { ...contexts, env };
    const files = runnerFilePaths(this.filesDir, step.index);
    await createRunnerFiles(session, files, signal);
    const pathEnv: Record<string, string> =
      this.addedPath.length > 0 ? { PATH: [...this.addedPath].reverse().concat(this.guest.path).join(":") } : {};
    const resolved: ResolvedStep = {
      name: this.expand(step.name, scoped),
      env: { ...env, ...pathEnv, ...files },
      workingDirectory: this.expand(step.workingDirectory, scoped),
      files,
    };
    if (step.action.case === "run") {
      const shell = step.action.value.shell;
      resolved.script = this.expand(step.action.value.script, scoped);
      resolved.shell = shell === DEFAULT_SHELL && !this.guest.hasBash ? SH_FALLBACK : shell;
    }
    return resolved;
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
    result: { outcome: Outcome; conclusion: Outcome },
    session: SshSession,
    signal: AbortSignal,
  ): Promise<{ outputs: Record<string, string>; summary: string }> {
    const outputs = { ...this.pendingOutputs.get(step.index) };
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
        outputs[name] = this.expand(text, contexts);
      } catch (error) {
        throw new Error(`job output ${name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return outputs;
  }
}
