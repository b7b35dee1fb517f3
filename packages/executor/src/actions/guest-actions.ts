import { readFile } from "node:fs/promises";
import { posix } from "node:path";
import type { PlannedStep } from "@solstice/protocol";
import { type GuestSession, shellQuote } from "@solstice/ssh";
import {
  type ContextValues,
  type EvaluateOptions,
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
import { type ResolvedStep, resolveDirectory, type StepRuntime } from "../step-runtime.ts";
import type { CompositeStep } from "./action-manifest.ts";
import type { ActionProvider, ResolvedAction } from "./job-actions.ts";
import { NODE_BOOTSTRAP } from "./node-bootstrap.ts";
import { chooseGuestNode, type DeclaredNodeRuntimes, type NodeMajor, nodeForUsing } from "./node-runtime.ts";

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

/** A JavaScript action whose main ran: its `post` runs at the job's end. */
interface PendingPost {
  /** Whose state the post reads: the job step's index, then the position in each composite. */
  readonly key: string;
  readonly action: ResolvedAction;
  readonly step: PlannedStep;
  readonly resolved: ResolvedStep;
  readonly env: Record<string, string>;
  /** The inputs its main had. */
  readonly inputs: Record<string, string>;
  /** "Run owner/name@ref", or "<composite step> › <its step>" for one inside a composite action. */
  readonly label: string;
}

/** A composite action's step with its expressions evaluated, just before it runs. */
interface EvaluatedInner {
  readonly name: string | undefined;
  readonly env: Record<string, string>;
  readonly continueOnError: boolean;
  readonly run: string | undefined;
  readonly shell: string | undefined;
  readonly workingDirectory: string;
  readonly with: Record<string, string>;
}

type StepsContext = Record<string, { outputs: Record<string, string>; outcome: string; conclusion: string }>;

/**
 * Runs a job's actions in its guest: puts each action's tree and the Node runtime there the first
 * time a step needs them, gives the action its inputs (`INPUT_<NAME>`), state (`GITHUB_STATE` →
 * `STATE_<name>`) and `GITHUB_ACTION_*` variables, and runs `pre`, `main` and `post` of JavaScript
 * actions and the steps of composite ones, as GitHub documents them.
 *
 * Actions inside composite actions have their `pre` and `post` too, as GitHub's runner runs them
 * (actions/runner docs/adrs/1144-composite-actions.md and ActionManager/CompositeActionHandler):
 * a composite step's pre runs the pres of the actions it uses, in their order, among the job's
 * pres; the post of each nested action whose main ran runs at the job's end, in reverse order
 * with every other post; each keeps its own state.
 */
export class GuestActions {
  private readonly placed = new Map<string, Promise<string>>();
  private readonly nodes = new Map<NodeMajor, Promise<string>>();
  /** Saved state per action run (see PendingPost.key), from its pre and main. */
  private readonly state = new Map<string, Record<string, string>>();
  /** Actions whose main ran and that have a `post`, in the order they ran. */
  private readonly needPost: PendingPost[] = [];
  private runs = 0;

  constructor(
    private readonly actions: ReadonlyMap<string, ResolvedAction>,
    private readonly provider: ActionProvider,
    private readonly guest: PreparedGuest,
    private readonly session: GuestSession,
    private readonly runtime: StepRuntime,
    private readonly events: JobEventStream,
    private readonly secrets: JobSecrets,
    /** The Node runtimes the job's image has of its own (images.yaml `node:`). */
    private readonly declaredNode?: DeclaredNodeRuntimes,
    /**
     * Variables for JavaScript actions' processes only, which may hold credentials: the forge's
     * ACTIONS_RUNTIME_TOKEN and friends (actions-runtime.ts) and the host job cache's
     * ACTIONS_CACHE_URL (job-cache-access.ts).
     */
    private readonly actionEnv: Readonly<Record<string, string>> = {},
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

  /** Evaluates with hashFiles() computed in the guest, as the job's own steps are. */
  private evaluate<T>(signal: AbortSignal, compute: (options: EvaluateOptions) => T): Promise<T> {
    return this.runtime.withGuestHashes(this.session, signal, compute);
  }

  /** The step's inputs: `with:` (secret ones unsealed) over the action's defaults. */
  private async inputs(
    run: ActionRun,
    action: ResolvedAction,
    given: Record<string, string>,
  ): Promise<Record<string, string>> {
    const declared = action.manifest.inputs ?? {};
    const unexpected = Object.keys(given).filter((name) => !(name in declared));
    if (unexpected.length > 0) {
      this.events.line(
        `Warning: Unexpected input(s) '${unexpected.join("', '")}', valid inputs are ['${Object.keys(declared).join("', '")}']`,
        "system",
      );
    }
    const contexts = this.runtime.actionContexts(run.step, run.status, run.resolved.env);
    const defaults: Record<string, string> = {};
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
      if (input.default !== undefined) defaults[name] = input.default;
      else if (input.required) this.events.line(`Warning: Input required and not supplied: ${name}`, "system");
    }
    const values = await this.evaluate(run.signal, (options) =>
      mapValues(defaults, (v) => expand(v, contexts, options)),
    );
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

  /**
   * The guest's `node` for `using`: the image's own when it declares one, else Node's official
   * build carried there; checked the first time a step needs it.
   */
  private node(using: string, signal: AbortSignal, warn = true): Promise<string> {
    const { major, warning } = nodeForUsing(using);
    if (warning && warn) this.events.line(`Warning: ${warning}`, "system");
    let getting = this.nodes.get(major);
    if (!getting) {
      const choice = chooseGuestNode(major, this.guest, this.declaredNode);
      getting =
        choice.kind === "declared"
          ? this.checkDeclaredNode(major, choice.path, signal)
          : choice.kind === "carried"
            ? this.carryNode(major, signal)
            : Promise.reject(new Error(choice.reason));
      getting.catch(() => this.nodes.delete(major));
      this.nodes.set(major, getting);
    }
    return getting;
  }

  /** Runs `node --version` in the guest: its first line, or what it said instead. */
  private async nodeVersion(node: string, signal: AbortSignal): Promise<{ ok: boolean; said: string }> {
    const lines: string[] = [];
    const check = await this.session.exec(`${shellQuote(node)} --version 2>&1`, {
      signal,
      onStdout: (line) => lines.push(line),
    });
    return {
      ok: check.exitCode === 0,
      said: check.exitCode === 0 ? (lines[0] ?? "") : lines.slice(0, 3).join("; ") || `exit ${check.exitCode}`,
    };
  }

  /** The image's own Node, as images.yaml declares it: it must run and be of the major asked for. */
  private async checkDeclaredNode(major: NodeMajor, node: string, signal: AbortSignal): Promise<string> {
    const { ok, said } = await this.nodeVersion(node, signal);
    if (!ok || !said.startsWith(`v${major}.`)) {
      throw new Error(
        `the image declares Node ${major} at ${node} (images.yaml \`node:\`), but ${ok ? `it is ${said}` : `it does not run: ${said}`}; fix the image or its images.yaml entry`,
      );
    }
    this.events.line(`Node ${said.slice(1)} from the image (${node})`, "system");
    return node;
  }

  private async carryNode(major: NodeMajor, signal: AbortSignal): Promise<string> {
    const runtime = await this.provider.node.get(major, this.guest.arch, signal);
    const dir = `${this.guest.home}/_solstice/node/${runtime.version}`;
    const started = Date.now();
    await this.session.unpackArchive(dir, await readFile(runtime.archive), signal);
    const node = `${dir}/bin/node`;
    const { ok, said } = await this.nodeVersion(node, signal);
    if (!ok || said !== `v${runtime.version}`) {
      throw new Error(
        `Node ${runtime.version} (Node's official Linux build) does not run in this guest: ${said}. It needs glibc 2.28 or later and libstdc++; use an image that has them for JavaScript actions, or declare the image's own Node in images.yaml (\`node:\`)`,
      );
    }
    this.events.line(
      `Node ${runtime.version} carried into the guest in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      "system",
    );
    return node;
  }

  /** Runs one file of a JavaScript action with Node, in the workspace, with the state saved under `key`. */
  private async runNode(
    run: ActionRun,
    action: ResolvedAction,
    file: string,
    phase: "pre" | "main" | "post",
    inputs: Record<string, string>,
    key: string,
  ): Promise<ActionRunResult> {
    if (action.manifest.runs.using === "composite" || action.manifest.runs.using === "docker") {
      throw new Error(`\`${action.uses}\` is not a JavaScript action`);
    }
    const [node, dir] = await Promise.all([
      this.node(action.manifest.runs.using, run.signal, phase === "main"),
      this.place(action, run.signal),
    ]);
    const filesDir = posix.dirname(run.resolved.files.GITHUB_OUTPUT);
    const id = `${run.step.index}_${phase}_${++this.runs}`;
    const stateFile = `${filesDir}/state_${id}`;
    const secretFile = `${filesDir}/action_${id}.json`;
    const saved = this.state.get(key) ?? {};
    // Inputs and state may have names a shell cannot export (INPUT_NODE-VERSION), and may hold
    // secrets: they reach Node through a file only root reads, which the bootstrap deletes first.
    // The forge's runtime token and the cache credential travel the same way, so no shell of the
    // step ever holds them and they are on no command line.
    const fromFile = {
      ...this.actionEnv,
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
      onLine: run.onLine,
      files: [{ path: secretFile, content: JSON.stringify(fromFile), mode: 0o600 }],
    });
    if (!result.aborted) {
      const { state } = await readRunnerFiles(this.session, { state: stateFile }, run.signal);
      this.state.set(key, { ...saved, ...parseKeyValueFile(state, "GITHUB_STATE") });
    }
    return { exitCode: result.exitCode, aborted: result.aborted };
  }

  /** Whether the action has a `pre` to run: its own, or, for a composite, one of the actions it uses. */
  private hasPre(action: ResolvedAction): boolean {
    const runs = action.manifest.runs;
    if (runs.using === "docker") return false;
    if (runs.using !== "composite") return runs.pre !== undefined;
    return runs.steps.some((inner) => inner.uses !== undefined && this.hasPre(this.actionOf(inner.uses)));
  }

  /** A log line reader for output outside a step (pre and post): workflow commands apply, as in the step. */
  private phaseLines(step: PlannedStep, env: Record<string, string>): OnLine {
    const commands = this.runtime.commandReader(step, env);
    return (stream, text, continued) => {
      const display = continued ? text : commands.line(text).display;
      if (display !== undefined) this.events.line(display, stream, new Date(), continued);
    };
  }

  /**
   * The step's `pre`, before the job's first step (GitHub's order): a JavaScript action's own,
   * run when `pre-if` (default `always()`) holds, or those of the actions a composite action uses.
   * Its output is the job's, not a step's. False if one failed.
   */
  async runPre(run: ActionRun): Promise<boolean> {
    if (run.step.action.case !== "uses") return true;
    const action = this.actionOf(run.step.action.value.uses);
    if (!this.hasPre(action)) return true;
    const withLines: ActionRun = { ...run, onLine: this.phaseLines(run.step, run.env) };
    return this.pre(
      withLines,
      action,
      () => this.inputs(run, action, this.givenInputs(run)),
      `${run.step.index}`,
      run.resolved.name || run.step.name,
    );
  }

  private async pre(
    run: ActionRun,
    action: ResolvedAction,
    inputsOf: () => Promise<Record<string, string>>,
    key: string,
    label: string,
  ): Promise<boolean> {
    const runs = action.manifest.runs;
    if (runs.using === "docker") return true;
    if (runs.using === "composite") {
      // As GitHub: the pres of the actions a composite uses, in order, with the composite's
      // inputs; its steps have not run, so their `with:` and `env` see no steps context.
      const inputs = await inputsOf();
      const dir = await this.place(action, run.signal);
      for (const [n, inner] of runs.steps.entries()) {
        if (inner.uses === undefined) continue;
        const nested = this.actionOf(inner.uses);
        if (!this.hasPre(nested)) continue;
        const contexts = compositeContexts(this.runtime, run, action, dir, inputs, {}, run.resolved.env, run.status);
        const evaluated = await this.evaluateInner(run.signal, inner, contexts);
        const innerEnv = { ...run.resolved.env, ...evaluated.env };
        const nestedRun: ActionRun = {
          ...run,
          env: { ...run.env, ...evaluated.env },
          resolved: { ...run.resolved, env: innerEnv, inputs: evaluated.with },
        };
        const ok = await this.pre(
          nestedRun,
          nested,
          () => this.inputs(nestedRun, nested, evaluated.with),
          `${key}.${n}`,
          `${label} › ${evaluated.name ?? inner.uses}`,
        );
        if (!ok) return false;
      }
      return true;
    }
    if (runs.pre === undefined) return true;
    const contexts = this.runtime.actionContexts(run.step, run.status, run.resolved.env);
    if (!evaluateCondition(runs["pre-if"] ?? "always()", contexts, run.status)) return true;
    this.events.line(`Pre ${label}`, "system");
    const result = await this.runNode(run, action, runs.pre, "pre", await inputsOf(), key);
    return result.exitCode === 0;
  }

  /** The step itself: a JavaScript action's `main`, or a composite action's steps. */
  async runMain(run: ActionRun): Promise<ActionRunResult> {
    if (run.step.action.case !== "uses") throw new Error("not an action step");
    const action = this.actionOf(run.step.action.value.uses);
    const inputs = await this.inputs(run, action, this.givenInputs(run));
    return this.main(run, action, inputs, `${run.step.index}`, run.resolved.name || run.step.name, 1);
  }

  /** An action's main part, at `depth` (1 for the job's step): its steps if composite, else its `main`. */
  private main(
    run: ActionRun,
    action: ResolvedAction,
    inputs: Record<string, string>,
    key: string,
    label: string,
    depth: number,
  ): Promise<ActionRunResult> {
    const runs = action.manifest.runs;
    if (runs.using === "composite") return this.runComposite(run, action, inputs, key, label, depth);
    if (runs.using === "docker") throw new Error(`\`${action.uses}\` is a Docker action`);
    if (runs.post !== undefined) {
      this.needPost.push({ key, action, step: run.step, resolved: run.resolved, env: run.env, inputs, label });
    }
    return this.runNode(run, action, runs.main, "main", inputs, key);
  }

  /**
   * The `post` of every action whose main ran — the job's steps' and those inside composite
   * actions — in reverse order, when `post-if` (default `always()`) holds: after a failure or a
   * cancel too. Returns false if one failed.
   */
  async runPosts(status: JobStatus, signal: AbortSignal): Promise<boolean> {
    let ok = true;
    for (const pending of [...this.needPost].reverse()) {
      const { action, step, resolved, env, label } = pending;
      const runs = action.manifest.runs;
      if (runs.using === "composite" || runs.using === "docker" || runs.post === undefined) continue;
      const contexts = this.runtime.actionContexts(step, status, resolved.env);
      if (!evaluateCondition(runs["post-if"] ?? "always()", contexts, status)) continue;
      this.events.line(`Post ${label}`, "system");
      const run: ActionRun = { step, resolved, env, status, signal, onLine: this.phaseLines(step, env) };
      try {
        const result = await this.runNode(run, action, runs.post, "post", pending.inputs, pending.key);
        if (result.exitCode !== 0) {
          ok = false;
          this.events.line(
            `Post ${label} failed: ${result.aborted ? "cancelled" : `exit code ${result.exitCode}`}`,
            "system",
          );
        }
      } catch (error) {
        ok = false;
        this.events.line(`Post ${label} failed: ${error instanceof Error ? error.message : String(error)}`, "system");
      }
    }
    return ok;
  }

  /**
   * Evaluates a composite step's expressions (hashFiles() computed in the guest): its env first,
   * then the rest with that env in the env context, as a workflow step's.
   */
  private evaluateInner(signal: AbortSignal, inner: CompositeStep, contexts: ContextValues): Promise<EvaluatedInner> {
    return this.evaluate(signal, (options) => {
      const env = mapValues(inner.env ?? {}, (v) => expand(v, contexts, options));
      const scoped = { ...contexts, env: { ...(contexts.env as Record<string, string>), ...env } };
      const text = (value: string | undefined) => (value === undefined ? undefined : expand(value, scoped, options));
      const rawContinue = inner["continue-on-error"];
      const continueText = typeof rawContinue === "boolean" ? String(rawContinue) : text(rawContinue)?.trim();
      if (continueText !== undefined && continueText !== "true" && continueText !== "false") {
        throw new Error(`continue-on-error must be true or false, got \`${continueText}\``);
      }
      return {
        name: text(inner.name),
        env,
        continueOnError: continueText === "true",
        run: text(inner.run),
        shell: text(inner.shell),
        workingDirectory: text(inner["working-directory"]) ?? "",
        with: mapValues(inner.with ?? {}, (v) => expand(v, scoped, options)),
      };
    });
  }

  /**
   * A composite action's steps, in one step of the job: `inputs.*`, a `steps` context of their
   * own, `run:` with its required `shell`, nested actions, `if:`, `env`, `working-directory` and
   * `continue-on-error` (expressions, hashFiles() among them, allowed as GitHub's action.yml
   * schema allows them), and the action's `outputs:` evaluated at the end. GITHUB_ENV and
   * GITHUB_PATH written by one of its steps apply to its later steps and, through the job step's
   * own files, to the job.
   */
  private async runComposite(
    run: ActionRun,
    action: ResolvedAction,
    inputs: Record<string, string>,
    key: string,
    label: string,
    depth: number,
  ): Promise<ActionRunResult> {
    if (action.manifest.runs.using !== "composite") throw new Error(`\`${action.uses}\` is not a composite action`);
    const dir = await this.place(action, run.signal);
    const steps: StepsContext = {};
    const shared = run.resolved.files;
    let env = { ...run.resolved.env };
    let path: string[] = [];
    let failed: number | null | undefined;
    let aborted = false;
    const statusNow = (): JobStatus => ({ ...run.status, jobFailed: run.status.jobFailed || failed !== undefined });
    for (const [n, inner] of action.manifest.runs.steps.entries()) {
      const status = statusNow();
      const contexts = compositeContexts(this.runtime, run, action, dir, inputs, steps, env, status);
      const runs =
        !aborted &&
        (await this.evaluate(run.signal, (options) => evaluateCondition(inner.if ?? "", contexts, status, options)));
      if (!runs) {
        if (inner.id) steps[inner.id] = { outputs: {}, outcome: "skipped", conclusion: "skipped" };
        continue;
      }
      const outputFile = `${posix.dirname(shared.GITHUB_OUTPUT)}/output_${run.step.index}_${depth}_${n}_${++this.runs}`;
      let result: ActionRunResult;
      let continueOnError = false;
      try {
        const evaluated = await this.evaluateInner(run.signal, inner, contexts);
        continueOnError = evaluated.continueOnError;
        const innerEnv = { ...env, ...evaluated.env };
        const fullEnv = {
          ...run.env,
          ...innerEnv,
          ...actionVariables(action, dir),
          GITHUB_OUTPUT: outputFile,
          ...(path.length > 0 ? { PATH: `${[...path].reverse().join(":")}:${run.env.PATH ?? this.guest.path}` } : {}),
        };
        const innerRun: ActionRun = { ...run, env: fullEnv, status, resolved: { ...run.resolved, env: innerEnv } };
        result = await this.runInner(innerRun, inner, evaluated, `${key}.${n}`, label, depth);
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
      const conclusion = outcome === "failure" && continueOnError ? "success" : outcome;
      if (outcome === "failure" && continueOnError) {
        this.events.line("continue-on-error: the composite action goes on", "system");
      }
      if (inner.id) {
        steps[inner.id] = {
          outputs: { ...parseKeyValueFile(files.output, "GITHUB_OUTPUT"), ...result.outputs },
          outcome,
          conclusion,
        };
      }
      if (conclusion !== "success" && failed === undefined) failed = result.exitCode ?? null;
    }
    const contexts = compositeContexts(this.runtime, run, action, dir, inputs, steps, env, statusNow());
    const outputs = mapValues(
      Object.fromEntries(Object.entries(action.manifest.outputs ?? {}).map(([name, o]) => [name, o.value ?? ""])),
      (value) => expand(value, contexts),
    );
    if (aborted) return { exitCode: null, aborted: true, outputs };
    return { exitCode: failed === undefined ? 0 : (failed ?? 1), aborted: false, outputs };
  }

  /** One step of a composite action, its expressions evaluated. */
  private async runInner(
    run: ActionRun,
    inner: CompositeStep,
    evaluated: EvaluatedInner,
    key: string,
    label: string,
    depth: number,
  ): Promise<ActionRunResult> {
    if (evaluated.run !== undefined) {
      this.events.line(`▸ ${evaluated.name ?? `Run ${evaluated.run.split("\n")[0]}`}`, "system");
      // The manifest's schema requires shell: on a run step.
      const shell = resolveShell((evaluated.shell ?? "").trim());
      if (!shell.ok) throw new Error(shell.message);
      const result = await this.session.runScript({
        script: evaluated.run,
        shell: shell.template,
        env: run.env,
        workingDirectory: resolveDirectory(this.guest.workspace, evaluated.workingDirectory),
        signal: run.signal,
        onLine: run.onLine,
      });
      return { exitCode: result.exitCode, aborted: result.aborted };
    }
    // The manifest's schema makes every other step a uses: step.
    const uses = inner.uses ?? "";
    if (evaluated.name !== undefined) this.events.line(`▸ ${evaluated.name}`, "system");
    const action = this.actionOf(uses);
    const nested: ActionRun = { ...run, resolved: { ...run.resolved, inputs: evaluated.with } };
    const inputs = await this.inputs(nested, action, evaluated.with);
    return this.main(nested, action, inputs, key, `${label} › ${evaluated.name ?? uses}`, depth + 1);
  }
}

/**
 * The contexts of a composite action's own expressions: the job step's, with the action's
 * `github.action_*`, its `inputs`, its own `steps` and `env`.
 */
function compositeContexts(
  runtime: StepRuntime,
  run: ActionRun,
  action: ResolvedAction,
  dir: string,
  inputs: Record<string, string>,
  steps: StepsContext,
  env: Record<string, string>,
  status: JobStatus,
): ContextValues {
  const base = runtime.actionContexts(run.step, status, env);
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

function expand(text: string, contexts: ContextValues, options?: EvaluateOptions): string {
  return findExpressions(text).length === 0 ? text : interpolateText(text, contexts, options);
}

function mapValues(values: Record<string, string>, map: (value: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([name, value]) => [name, map(value)]));
}
