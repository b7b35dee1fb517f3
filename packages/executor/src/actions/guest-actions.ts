import { readFile } from "node:fs/promises";
import { posix } from "node:path";
import type { PlannedStep } from "@solstice/protocol";
import { type SshSession, shellQuote } from "@solstice/ssh";
import {
  type ContextValues,
  evaluateCondition,
  findExpressions,
  interpolateText,
  type JobStatus,
  resolveShell,
} from "@solstice/workflow";
import type { PreparedGuest } from "../guest-facts.ts";
import type { JobEventStream } from "../job-events.ts";
import type { JobSecrets } from "../job-secrets.ts";
import { parseKeyValueFile, parsePathFile, readRunnerFiles } from "../runner-files.ts";
import type { ResolvedStep, StepRuntime } from "../step-runtime.ts";
import type { CompositeStep } from "./action-manifest.ts";
import type { ActionProvider, ResolvedAction } from "./job-actions.ts";
import { NODE_BOOTSTRAP } from "./node-bootstrap.ts";
import { type NodeMajor, nodeForUsing } from "./node-runtime.ts";

type OnLine = (stream: "stdout" | "stderr", text: string, continued: boolean) => void;

/** What one run of an action's code needs from the step it belongs to. */
export interface ActionRun {
  readonly step: PlannedStep;
  readonly resolved: ResolvedStep;
  /** The step's whole environment: workflow env, secrets, GITHUB_* and RUNNER_* variables. */
  readonly env: Record<string, string>;
  readonly status: JobStatus;
  readonly signal: AbortSignal;
  readonly onLine: OnLine;
}

export interface ActionRunResult {
  readonly exitCode: number | null;
  readonly aborted: boolean;
  /** A composite action's `outputs:`, evaluated after its steps. */
  readonly outputs?: Record<string, string>;
}

/**
 * Runs a job's actions in its guest: puts each action's tree and the Node runtime there the first
 * time a step needs them, gives the action its inputs (`INPUT_<NAME>`), state (`GITHUB_STATE` →
 * `STATE_<name>`) and `GITHUB_ACTION_*` variables, and runs `pre`, `main` and `post` of JavaScript
 * actions and the steps of composite ones, as GitHub documents them.
 */
export class GuestActions {
  private readonly placed = new Map<string, Promise<string>>();
  private readonly nodes = new Map<NodeMajor, Promise<string>>();
  /** Saved state per step index, from its pre and main. */
  private readonly state = new Map<number, Record<string, string>>();
  /** Steps whose action has a `post`, in the order they ran. */
  private readonly needPost: { step: PlannedStep; resolved: ResolvedStep; env: Record<string, string> }[] = [];
  private runs = 0;

  constructor(
    private readonly actions: ReadonlyMap<string, ResolvedAction>,
    private readonly provider: ActionProvider,
    private readonly guest: PreparedGuest,
    private readonly session: SshSession,
    private readonly runtime: StepRuntime,
    private readonly events: JobEventStream,
    private readonly secrets: JobSecrets,
  ) {}

  /**
   * Starts carrying what the job's JavaScript actions need (the Node runtimes, the action trees)
   * into the guest now, alongside the steps before them: under TCG a Node runtime takes tens of
   * seconds to arrive. A failure here is not the job's: the step that needs the piece tries again
   * and reports it.
   */
  prefetch(signal: AbortSignal): void {
    for (const action of this.actions.values()) {
      const using = action.manifest.runs.using;
      if (using !== "composite" && using !== "docker") this.node(using, signal, false).catch(() => {});
      this.place(action, signal).catch(() => {});
    }
  }

  private actionOf(uses: string): ResolvedAction {
    const action = this.actions.get(uses);
    if (!action) throw new Error(`action \`${uses}\` was not fetched before the job started`);
    return action;
  }

  /** The step's inputs: `with:` (secret ones unsealed) over the action's defaults. */
  private inputs(run: ActionRun, action: ResolvedAction, given: Record<string, string>): Record<string, string> {
    const declared = action.manifest.inputs ?? {};
    const unexpected = Object.keys(given).filter((name) => !(name in declared));
    if (unexpected.length > 0) {
      this.events.line(
        `Warning: Unexpected input(s) '${unexpected.join("', '")}', valid inputs are ['${Object.keys(declared).join("', '")}']`,
        "system",
      );
    }
    const contexts = this.runtime.actionContexts(run.step, run.status, run.resolved.env);
    const values: Record<string, string> = {};
    for (const [name, input] of Object.entries(declared)) {
      if (name in given) {
        if (input.deprecationMessage) {
          this.events.line(
            `Warning: Input '${name}' has been deprecated with message: ${input.deprecationMessage}`,
            "system",
          );
        }
        continue;
      }
      if (input.default !== undefined) values[name] = expand(input.default, contexts);
      else if (input.required) this.events.line(`Warning: Input required and not supplied: ${name}`, "system");
    }
    return { ...values, ...given };
  }

  /** The step's evaluated `with:`, its secret inputs unsealed. */
  private givenInputs(run: ActionRun): Record<string, string> {
    if (run.step.action.case !== "uses") return {};
    const secret = Object.entries(run.step.action.value.secretInputs).map(
      ([input, name]) => [input, this.secrets.get(name) ?? ""] as const,
    );
    return { ...run.resolved.inputs, ...Object.fromEntries(secret) };
  }

  /** Where the action's tree is in the guest, unpacked there the first time the job needs it. */
  private place(action: ResolvedAction, signal: AbortSignal): Promise<string> {
    const root = `${this.guest.home}/_actions/${action.fetched.repository}/${action.fetched.commit}`;
    let placing = this.placed.get(root);
    if (!placing) {
      placing = readFile(action.fetched.archive).then(async (archive) => {
        await this.session.unpackArchive(root, archive, signal);
        return root;
      });
      placing.catch(() => this.placed.delete(root));
      this.placed.set(root, placing);
    }
    return placing.then((dir) => (action.path ? `${dir}/${action.path}` : dir));
  }

  /** The guest's `node` for `using`, carried there and checked the first time a step needs it. */
  private node(using: string, signal: AbortSignal, warn = true): Promise<string> {
    const { major, warning } = nodeForUsing(using);
    if (warning && warn) this.events.line(`Warning: ${warning}`, "system");
    let carrying = this.nodes.get(major);
    if (!carrying) {
      carrying = this.carryNode(major, signal);
      carrying.catch(() => this.nodes.delete(major));
      this.nodes.set(major, carrying);
    }
    return carrying;
  }

  private async carryNode(major: NodeMajor, signal: AbortSignal): Promise<string> {
    const runtime = await this.provider.node.get(major, this.guest.arch, signal);
    const dir = `${this.guest.home}/_solstice/node/${runtime.version}`;
    const started = Date.now();
    await this.session.unpackArchive(dir, await readFile(runtime.archive), signal);
    const node = `${dir}/bin/node`;
    const lines: string[] = [];
    const check = await this.session.exec(`${shellQuote(node)} --version 2>&1`, {
      signal,
      onStdout: (line) => lines.push(line),
    });
    if (check.exitCode !== 0 || lines[0] !== `v${runtime.version}`) {
      throw new Error(
        `Node ${runtime.version} (Node's official Linux build) does not run in this guest: ${lines.slice(0, 3).join("; ") || `exit ${check.exitCode}`}. It needs glibc 2.28 or later and libstdc++; use an image that has them for JavaScript actions`,
      );
    }
    this.events.line(
      `Node ${runtime.version} carried into the guest in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      "system",
    );
    return node;
  }

  /** Runs one file of a JavaScript action with Node, in the workspace. */
  private async runNode(
    run: ActionRun,
    action: ResolvedAction,
    file: string,
    phase: "pre" | "main" | "post",
    inputs: Record<string, string>,
    onLine: OnLine,
  ): Promise<ActionRunResult> {
    if (action.manifest.runs.using === "composite" || action.manifest.runs.using === "docker") {
      throw new Error(`\`${action.uses}\` is not a JavaScript action`);
    }
    const [node, dir] = await Promise.all([
      this.node(action.manifest.runs.using, run.signal),
      this.place(action, run.signal),
    ]);
    const filesDir = posix.dirname(run.resolved.files.GITHUB_OUTPUT);
    const id = `${run.step.index}_${phase}_${++this.runs}`;
    const stateFile = `${filesDir}/state_${id}`;
    const secretFile = `${filesDir}/action_${id}.json`;
    const saved = this.state.get(run.step.index) ?? {};
    // Inputs and state may have names a shell cannot export (INPUT_NODE-VERSION), and may hold
    // secrets: they reach Node through a file only root reads, which the bootstrap deletes first.
    const fromFile = {
      ...Object.fromEntries(Object.entries(inputs).map(([name, value]) => [inputVariable(name), value])),
      ...Object.fromEntries(Object.entries(saved).map(([name, value]) => [`STATE_${name}`, value])),
    };
    const result = await this.session.runScript({
      script: NODE_BOOTSTRAP,
      shell: `${shellQuote(node)} {0}`,
      env: {
        ...run.env,
        ...actionVariables(action, dir),
        GITHUB_STATE: stateFile,
        SOLSTICE_ACTION_ENV: secretFile,
        SOLSTICE_ACTION_MAIN: `${dir}/${file}`,
      },
      workingDirectory: this.guest.workspace,
      signal: run.signal,
      onLine,
      files: [{ path: secretFile, content: JSON.stringify(fromFile), mode: 0o600 }],
    });
    if (!result.aborted) {
      const { state } = await readRunnerFiles(this.session, { state: stateFile }, run.signal);
      this.state.set(run.step.index, { ...saved, ...parseKeyValueFile(state, "GITHUB_STATE") });
    }
    return { exitCode: result.exitCode, aborted: result.aborted };
  }

  /**
   * The step's `pre`, before the job's first step (GitHub's order): only JavaScript actions have
   * one, run when `pre-if` (default `always()`) holds. Its output is the job's, not a step's.
   */
  async runPre(run: ActionRun): Promise<boolean> {
    if (run.step.action.case !== "uses") return true;
    const action = this.actionOf(run.step.action.value.uses);
    const runs = action.manifest.runs;
    if (runs.using === "composite" || runs.using === "docker" || runs.pre === undefined) return true;
    const contexts = this.runtime.actionContexts(run.step, run.status, run.resolved.env);
    if (!evaluateCondition(runs["pre-if"] ?? "always()", contexts, run.status)) return true;
    this.events.line(`Pre ${run.resolved.name || run.step.name}`, "system");
    const commands = this.runtime.commandReader(run.step, run.env);
    const result = await this.runNode(
      run,
      action,
      runs.pre,
      "pre",
      this.inputs(run, action, this.givenInputs(run)),
      (stream, text, continued) => {
        const display = continued ? text : commands.line(text).display;
        if (display !== undefined) this.events.line(display, stream, new Date(), continued);
      },
    );
    return result.exitCode === 0;
  }

  /** The step itself: a JavaScript action's `main`, or a composite action's steps. */
  async runMain(run: ActionRun): Promise<ActionRunResult> {
    if (run.step.action.case !== "uses") throw new Error("not an action step");
    const action = this.actionOf(run.step.action.value.uses);
    const runs = action.manifest.runs;
    const inputs = this.inputs(run, action, this.givenInputs(run));
    if (runs.using === "composite") {
      return this.runComposite(run, action, inputs, 1);
    }
    if (runs.using === "docker") throw new Error(`\`${action.uses}\` is a Docker action`);
    if (runs.post !== undefined) this.needPost.push({ step: run.step, resolved: run.resolved, env: run.env });
    return this.runNode(run, action, runs.main, "main", inputs, run.onLine);
  }

  /**
   * The `post` of every action step that ran, in reverse order, when `post-if` (default
   * `always()`) holds — after a failure or a cancel too. Returns false if one failed.
   */
  async runPosts(status: JobStatus, signal: AbortSignal): Promise<boolean> {
    let ok = true;
    for (const { step, resolved, env } of [...this.needPost].reverse()) {
      if (step.action.case !== "uses") continue;
      const action = this.actionOf(step.action.value.uses);
      const runs = action.manifest.runs;
      if (runs.using === "composite" || runs.using === "docker" || runs.post === undefined) continue;
      const run: ActionRun = { step, resolved, env, status, signal, onLine: () => {} };
      const contexts = this.runtime.actionContexts(step, status, resolved.env);
      if (!evaluateCondition(runs["post-if"] ?? "always()", contexts, status)) continue;
      this.events.line(`Post ${resolved.name || step.name}`, "system");
      const commands = this.runtime.commandReader(step, env);
      try {
        const result = await this.runNode(
          run,
          action,
          runs.post,
          "post",
          this.inputs(run, action, this.givenInputs(run)),
          (stream, text, continued) => {
            const display = continued ? text : commands.line(text).display;
            if (display !== undefined) this.events.line(display, stream, new Date(), continued);
          },
        );
        if (result.exitCode !== 0) {
          ok = false;
          this.events.line(
            `Post ${resolved.name || step.name} failed: ${result.aborted ? "cancelled" : `exit code ${result.exitCode}`}`,
            "system",
          );
        }
      } catch (error) {
        ok = false;
        this.events.line(
          `Post ${resolved.name || step.name} failed: ${error instanceof Error ? error.message : String(error)}`,
          "system",
        );
      }
    }
    return ok;
  }

  /**
   * A composite action's steps, in one step of the job: `inputs.*`, a `steps` context of their
   * own, `run:` with its required `shell`, nested actions, `if:` and `continue-on-error`, and the
   * action's `outputs:` evaluated at the end. GITHUB_ENV and GITHUB_PATH written by one of its
   * steps apply to its later steps and, through the job step's own files, to the job.
   */
  private async runComposite(
    run: ActionRun,
    action: ResolvedAction,
    inputs: Record<string, string>,
    depth: number,
  ): Promise<ActionRunResult> {
    if (action.manifest.runs.using !== "composite") throw new Error(`\`${action.uses}\` is not a composite action`);
    const dir = await this.place(action, run.signal);
    const steps: Record<string, { outputs: Record<string, string>; outcome: string; conclusion: string }> = {};
    const shared = run.resolved.files;
    let env = { ...run.resolved.env };
    let path: string[] = [];
    let failed: number | null | undefined;
    let aborted = false;
    const contextsOf = (): ContextValues => {
      const base = this.runtime.actionContexts(
        run.step,
        { ...run.status, jobFailed: run.status.jobFailed || failed !== undefined },
        env,
      );
      return {
        ...base,
        github: {
          ...(base.github as Record<string, unknown>),
          action_path: dir,
          action_repository: action.fetched.repository,
          action_ref: action.fetched.ref,
        },
        inputs,
        steps,
      };
    };
    for (const [n, inner] of action.manifest.runs.steps.entries()) {
      const status = { ...run.status, jobFailed: run.status.jobFailed || failed !== undefined };
      const contexts = contextsOf();
      if (aborted || !evaluateCondition(inner.if ?? "", contexts, status)) {
        if (inner.id) steps[inner.id] = { outputs: {}, outcome: "skipped", conclusion: "skipped" };
        continue;
      }
      const innerEnv = { ...env, ...mapValues(inner.env ?? {}, (v) => expand(v, contexts)) };
      const outputFile = `${posix.dirname(shared.GITHUB_OUTPUT)}/output_${run.step.index}_${depth}_${n}_${++this.runs}`;
      const fullEnv = {
        ...run.env,
        ...innerEnv,
        ...actionVariables(action, dir),
        GITHUB_OUTPUT: outputFile,
        ...(path.length > 0 ? { PATH: `${[...path].reverse().join(":")}:${run.env.PATH ?? this.guest.path}` } : {}),
      };
      const innerRun: ActionRun = { ...run, env: fullEnv, status, resolved: { ...run.resolved, env: innerEnv } };
      let result: ActionRunResult;
      try {
        result = await this.runInner(innerRun, inner, contexts, depth, action);
      } catch (error) {
        this.events.line(`Error: ${error instanceof Error ? error.message : String(error)}`, "system");
        result = { exitCode: 1, aborted: false };
      }
      aborted = result.aborted;
      const files = result.aborted
        ? { output: "", env: "", path: "" }
        : await readRunnerFiles(
            this.session,
            { output: outputFile, env: shared.GITHUB_ENV, path: shared.GITHUB_PATH },
            run.signal,
          );
      env = { ...run.resolved.env, ...parseKeyValueFile(files.env, "GITHUB_ENV") };
      path = parsePathFile(files.path);
      const outcome = result.aborted ? "cancelled" : result.exitCode === 0 ? "success" : "failure";
      const continueOnError = inner["continue-on-error"] === true || String(inner["continue-on-error"]) === "true";
      const conclusion = outcome === "failure" && continueOnError ? "success" : outcome;
      if (inner.id) {
        steps[inner.id] = {
          outputs: { ...parseKeyValueFile(files.output, "GITHUB_OUTPUT"), ...result.outputs },
          outcome,
          conclusion,
        };
      }
      if (conclusion !== "success" && failed === undefined) failed = result.exitCode ?? null;
    }
    const contexts = contextsOf();
    const outputs = mapValues(
      Object.fromEntries(Object.entries(action.manifest.outputs ?? {}).map(([name, o]) => [name, o.value ?? ""])),
      (value) => expand(value, contexts),
    );
    if (aborted) return { exitCode: null, aborted: true, outputs };
    return { exitCode: failed === undefined ? 0 : (failed ?? 1), aborted: false, outputs };
  }

  /** One step of a composite action. */
  private async runInner(
    run: ActionRun,
    inner: CompositeStep,
    contexts: ContextValues,
    depth: number,
    parent: ResolvedAction,
  ): Promise<ActionRunResult> {
    if (inner.name !== undefined || inner.run !== undefined) {
      this.events.line(`▸ ${expand(inner.name ?? `Run ${(inner.run ?? "").split("\n")[0]}`, contexts)}`, "system");
    }
    if (inner.run !== undefined) {
      if (inner.shell === undefined) {
        throw new Error(`\`${parent.uses}\`: a run step of a composite action needs shell: (as on GitHub)`);
      }
      const shell = resolveShell(expand(inner.shell, contexts).trim());
      if (!shell.ok) throw new Error(`\`${parent.uses}\`: ${shell.message}`);
      const workingDirectory = inner["working-directory"] ? expand(inner["working-directory"], contexts) : "";
      const result = await this.session.runScript({
        script: expand(inner.run, contexts),
        shell: shell.template,
        env: run.env,
        workingDirectory: workingDirectory.startsWith("/")
          ? workingDirectory
          : workingDirectory
            ? `${this.guest.workspace}/${workingDirectory}`
            : this.guest.workspace,
        signal: run.signal,
        onLine: run.onLine,
      });
      return { exitCode: result.exitCode, aborted: result.aborted };
    }
    if (inner.uses === undefined) throw new Error(`\`${parent.uses}\`: a composite step needs run: or uses:`);
    const action = this.actionOf(inner.uses);
    const given = mapValues(inner.with ?? {}, (v) => expand(v, contexts));
    const nested: ActionRun = { ...run, resolved: { ...run.resolved, inputs: given } };
    const inputs = this.inputs(nested, action, given);
    if (action.manifest.runs.using === "composite") {
      return this.runComposite(nested, action, inputs, depth + 1);
    }
    if (action.manifest.runs.using === "docker") throw new Error(`\`${action.uses}\` is a Docker action`);
    return this.runNode(nested, action, action.manifest.runs.main, "main", inputs, run.onLine);
  }
}

/** GITHUB_ACTION_PATH, GITHUB_ACTION_REPOSITORY and GITHUB_ACTION_REF of a step running `action`. */
function actionVariables(action: ResolvedAction, dir: string): Record<string, string> {
  return {
    GITHUB_ACTION_PATH: dir,
    GITHUB_ACTION_REPOSITORY: action.fetched.repository,
    GITHUB_ACTION_REF: action.fetched.ref,
  };
}

/** GitHub's rule: `INPUT_` + the input's name in upper case, spaces as underscores (hyphens stay). */
export function inputVariable(name: string): string {
  return `INPUT_${name.replace(/ /g, "_").toUpperCase()}`;
}

function expand(text: string, contexts: ContextValues): string {
  return findExpressions(text).length === 0 ? text : interpolateText(text, contexts);
}

function mapValues(values: Record<string, string>, map: (value: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, map(value)]));
}
