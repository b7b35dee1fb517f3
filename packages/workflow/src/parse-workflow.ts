import { posix } from "node:path";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { parseActionReference } from "./action-reference.ts";
import {
  actionSuggestion,
  checkoutInputSuggestion,
  type ForgeService,
  unsupportedActionAdvice,
} from "./action-suggestions.ts";
import {
  ExpressionError,
  evaluateExpression,
  findExpressions,
  isTruthy,
  parseCondition,
  parseExpression,
} from "./expression-engine.ts";
import { interpolate, type PlanScope, wholeSecretReference } from "./expressions.ts";
import {
  expandMatrix,
  MAX_MATRIX_JOBS,
  type MatrixCombination,
  type MatrixSpec,
  matrixJobName,
  type StrategyContext,
} from "./matrix.ts";
import { DEFAULT_SHELL, resolveShell } from "./shells.ts";
import { type WorkflowProblem, WorkflowValidationError } from "./workflow-errors.ts";
import type {
  Env,
  EnvValue,
  PlanContexts,
  PlannedActionStep,
  PlannedCheckoutStep,
  PlannedJob,
  PlannedRunStep,
  PlannedStepDef,
  Workflow,
} from "./workflow-plan.ts";
import { type Entry, ProblemCollector, YamlReader } from "./yaml-reader.ts";

/** Larger files are refused before parsing: a workflow is hand-written text, never this big. */
export const MAX_WORKFLOW_BYTES = 1024 * 1024;

/** As in Actions, a job without `timeout-minutes` may run for six hours. */
export const DEFAULT_JOB_TIMEOUT_MINUTES = 360;

/** actions/checkout clones one commit unless told otherwise. */
const DEFAULT_FETCH_DEPTH = 1;

// `permissions` narrows a forge token; Solstice gives steps no forge token, so there is nothing to narrow.
const WORKFLOW_KEYS = ["name", "on", "env", "defaults", "jobs", "permissions"];
const JOB_KEYS = [
  "name",
  "runs-on",
  "env",
  "defaults",
  "timeout-minutes",
  "continue-on-error",
  "if",
  "needs",
  "outputs",
  "steps",
  "permissions",
  "strategy",
];
const STEP_KEYS = [
  "name",
  "id",
  "if",
  "run",
  "uses",
  "with",
  "shell",
  "working-directory",
  "env",
  "timeout-minutes",
  "continue-on-error",
];
const CHECKOUT_INPUTS = ["repository", "ref", "path", "fetch-depth", "token", "submodules", "clean"];
type CheckoutInputs = Partial<
  Pick<PlannedCheckoutStep, "repository" | "ref" | "path" | "fetchDepth" | "submodules" | "clean" | "tokenSecret">
>;

const SUPPORTED_STEPS =
  "Solstice runs `run:` steps, the built-in actions/checkout, and JavaScript and composite actions from a repository (owner/name@ref)";

const SECRET_ELSEWHERE = `secrets can be read in env values, an action's with: and a step's run, name and working-directory, e.g. TOKEN: \${{ secrets.TOKEN }}`;
const STEP_ID = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const CHECKOUT_USES = /^actions\/checkout@(.+)$/i;

interface RunDefaults {
  shell?: string;
  workingDirectory?: string;
}

export interface ParseWorkflowOptions {
  /** Shown in every problem; usually the path relative to the repository, e.g. `.forgejo/workflows/ci.yml`. */
  file: string;
  contexts?: PlanContexts;
  /** Plans only this job (its key under `jobs:`); the others are read for their keys only. */
  job?: string;
  /** The forge services the jobs will have (artifacts, cache): the actions that need one run only with it. Default none. */
  services?: ReadonlySet<ForgeService>;
}

class Planner {
  constructor(
    private readonly reader: YamlReader,
    private readonly contexts: PlanContexts,
    private readonly services: ReadonlySet<ForgeService>,
  ) {}

  private get problems(): ProblemCollector {
    return this.reader.problems;
  }

  private scope(env: Env, runtime?: PlanScope["runtime"]): PlanScope {
    return { contexts: this.contexts as Record<string, unknown>, env, ...(runtime ? { runtime } : {}) };
  }

  /**
   * Substitutes expressions in a string-valued node; problems are reported and the raw text kept.
   * With `runtime`, text that needs run-time values (steps, job, runner, secrets, env as GITHUB_ENV
   * left it…) is kept as written for the executor, which evaluates it just before the step; without,
   * such text is a problem.
   */
  expandedText(
    entry: Entry | undefined,
    env: Env,
    { runtime = false }: { runtime?: boolean } = {},
  ): string | undefined {
    if (entry === undefined) return undefined;
    const raw = this.reader.text(entry.value, entry.key);
    if (raw === undefined || entry.value === undefined) return undefined;
    const { text, issues, deferred } = interpolate(
      raw,
      this.scope(env, runtime ? "step" : undefined),
      SECRET_ELSEWHERE,
    );
    this.problems.expressionIssues(entry.value, entry.key, raw, issues);
    if (deferred && !runtime) {
      this.problems.atNode(
        entry.value,
        entry.key,
        `\`${raw.trim()}\` uses values that exist only while the job runs (steps, job, runner, needs, hashFiles, status functions); here only github, env, vars, inputs, matrix and strategy can be used`,
      );
    }
    return text;
  }

  /**
   * The entry's own variables, with expressions resolved against `outer` (the enclosing levels' env).
   * `level` says when the executor evaluates what is left: as the job starts, or just before the step.
   */
  env(entry: Entry | undefined, outer: Env, level: "job" | "step"): Env {
    const env: Env = {};
    if (entry === undefined) return env;
    const map = this.reader.mapping(entry.value, entry.key);
    if (map === undefined) return env;
    const scope = this.scope(outer, level);
    for (const variable of this.reader.entries(map, entry.key)) {
      if (!isScalar(variable.value)) {
        this.problems.atNode(
          variable.value ?? variable.keyNode,
          variable.key,
          "env values must be strings, numbers or booleans, not a mapping or list",
        );
        continue;
      }
      const raw = this.reader.text(variable.value, variable.key, "");
      if (raw === undefined) continue;
      const secret = wholeSecretReference(raw);
      if (secret !== undefined) {
        env[variable.name] = { fromSecret: secret };
        continue;
      }
      // Values that need run-time contexts are kept as written and evaluated by the executor.
      const { text, issues } = interpolate(raw, scope, SECRET_ELSEWHERE);
      this.problems.expressionIssues(variable.value, variable.key, raw, issues);
      env[variable.name] = text;
    }
    return env;
  }

  /** `defaults.run`, each key falling back to `outer`. */
  defaults(entry: Entry | undefined, outer: RunDefaults, env: Env): RunDefaults {
    if (entry === undefined) return outer;
    const map = this.reader.mapping(entry.value, entry.key);
    if (map === undefined) return outer;
    const run = this.reader.keyed(map, entry.key, ["run"]).get("run");
    if (run === undefined) return outer;
    const runMap = this.reader.mapping(run.value, run.key);
    if (runMap === undefined) return outer;
    const keys = this.reader.keyed(runMap, run.key, ["shell", "working-directory"]);
    return {
      shell: this.shell(keys.get("shell"), env) ?? outer.shell,
      workingDirectory:
        this.expandedText(keys.get("working-directory"), env, { runtime: true }) ?? outer.workingDirectory,
    };
  }

  private shell(entry: Entry | undefined, env: Env): string | undefined {
    const shell = this.expandedText(entry, env);
    if (entry === undefined || shell === undefined) return undefined;
    const resolved = resolveShell(shell.trim());
    if (resolved.ok) return resolved.template;
    this.problems.atNode(entry.value, entry.key, resolved.message);
    return undefined;
  }

  private condition(entry: Entry | undefined): string | undefined {
    if (entry === undefined) return undefined;
    const text = this.reader.text(entry.value, entry.key);
    if (text === undefined) return undefined;
    try {
      const parsed = parseCondition(text);
      // As on GitHub: a secret is not readable in if:, because the condition is shown in logs and UIs.
      if (parsed.refs.contexts.has("secrets")) {
        this.problems.atNode(entry.value, entry.key, "secrets cannot be read in if:", {
          suggestion: "set a job or step env variable from the secret and test env.NAME instead",
        });
      }
    } catch (error) {
      if (!(error instanceof ExpressionError)) throw error;
      const offset = Math.max(0, text.indexOf(error.expression));
      const issue = { offset, expression: error.expression, message: error.detail, suggestion: error.hint };
      if (entry.value === undefined)
        this.problems.atNode(entry.keyNode, entry.key, issue.message, { suggestion: issue.suggestion });
      else this.problems.expressionIssues(entry.value, entry.key, text, [issue]);
    }
    return text;
  }

  private runsOn(entry: Entry | undefined, jobEntry: Entry, env: Env): string {
    if (entry === undefined) {
      this.problems.atNode(jobEntry.keyNode, jobEntry.key, "has no runs-on: name the label of the machine to run on");
      return "";
    }
    if (isMap(entry.value)) {
      this.problems.atNode(
        entry.value,
        entry.key,
        "runs-on with group/labels is not supported; give a label or a list of labels",
      );
      return "";
    }
    const labels = this.reader.stringList(entry.value, entry.key).map((label) => {
      const { text, issues, deferred } = interpolate(label, this.scope(env), SECRET_ELSEWHERE);
      if (deferred) {
        issues.push({
          offset: 0,
          expression: label,
          message: "runs-on can only use github, env, vars, inputs, matrix",
        });
      }
      if (entry.value !== undefined) this.problems.expressionIssues(entry.value, entry.key, label, issues);
      return text.trim();
    });
    // A job goes to one label's queue. In a list, the last entry other than "self-hosted" is that label,
    // so `[self-hosted, ubuntu-24.04]` works as it does on a forge with self-hosted runners.
    const label = labels.filter((l) => l !== "" && l.toLowerCase() !== "self-hosted").at(-1);
    if (label === undefined) {
      this.problems.atNode(
        entry.value ?? entry.keyNode,
        entry.key,
        "names no label: give the label of the machine to run on, e.g. runs-on: ubuntu-24.04",
      );
      return "";
    }
    return label;
  }

  private outputs(entry: Entry | undefined): Record<string, string> {
    const outputs: Record<string, string> = {};
    if (entry === undefined) return outputs;
    const map = this.reader.mapping(entry.value, entry.key);
    if (map === undefined) return outputs;
    for (const output of this.reader.entries(map, entry.key)) {
      const text = this.reader.text(output.value, output.key);
      if (text !== undefined) outputs[output.name] = text;
    }
    return outputs;
  }

  /** The job, or one job per combination of its matrix. */
  jobs(jobEntry: Entry, jobKeys: readonly string[], workflowEnv: Env, workflowDefaults: RunDefaults): PlannedJob[] {
    const map = this.reader.mapping(jobEntry.value, jobEntry.key);
    if (map === undefined) return [];
    const keys = this.reader.keyed(map, jobEntry.key, JOB_KEYS);
    if (this.strategyReadsNeeds(keys.get("strategy"))) return [this.waitingForNeeds(jobEntry, keys, jobKeys)];
    const strategy = this.strategy(keys.get("strategy"), workflowEnv);
    if (strategy === undefined) return [this.job(jobEntry, keys, jobKeys, workflowEnv, workflowDefaults)];
    return strategy.combinations.map((matrix, index) => {
      const context: StrategyContext = {
        "fail-fast": strategy.failFast,
        "job-index": index,
        "job-total": strategy.combinations.length,
        "max-parallel": strategy.maxParallel ?? strategy.combinations.length,
      };
      const planner = new Planner(this.reader, { ...this.contexts, matrix, strategy: { ...context } }, this.services);
      const job = planner.job(jobEntry, keys, jobKeys, workflowEnv, workflowDefaults);
      const named = keys.get("name")?.value;
      const nameUsesMatrix = isScalar(named) && /\$\{\{[^}]*matrix/i.test(String(named.value));
      return { ...job, name: nameUsesMatrix ? job.name : matrixJobName(job.name, matrix), matrix, strategy: context };
    });
  }

  /**
   * Whether the job's strategy reads the outputs of the jobs it needs (`matrix: ${{
   * fromJSON(needs.plan.outputs.m) }}`) while they are not known yet: then the job is planned
   * once they finished.
   */
  private strategyReadsNeeds(entry: Entry | undefined): boolean {
    if (entry === undefined || this.contexts.needs !== undefined) return false;
    return this.reader.scalarTexts(entry.value).some((text) =>
      findExpressions(text).some((span) => {
        if (span.inner === undefined) return false;
        try {
          return parseExpression(span.inner.trim()).refs.contexts.has("needs");
        } catch {
          return false; // reported when the job is planned
        }
      }),
    );
  }

  /** The job's place in the graph until its needs finished: its key, needs and if:, nothing to run. */
  private waitingForNeeds(jobEntry: Entry, keys: Map<string, Entry>, jobKeys: readonly string[]): PlannedJob {
    const ifCondition = this.condition(keys.get("if"));
    return {
      key: jobEntry.name,
      name: jobEntry.name,
      runsOn: "",
      timeoutMinutes: DEFAULT_JOB_TIMEOUT_MINUTES,
      continueOnError: false,
      env: {},
      needs: this.needs(keys.get("needs"), jobKeys),
      ...(ifCondition === undefined ? {} : { ifCondition }),
      outputs: {},
      steps: [],
      matrixFromNeeds: true,
    };
  }

  private needs(entry: Entry | undefined, jobKeys: readonly string[]): string[] {
    const needed = entry === undefined ? [] : this.reader.stringList(entry.value, entry.key);
    for (const need of needed) {
      if (entry !== undefined && !jobKeys.includes(need)) {
        this.problems.atNode(
          entry.value,
          entry.key,
          `needs unknown job \`${need}\`; jobs in this file: ${jobKeys.join(", ")}`,
        );
      }
    }
    return needed;
  }

  private job(
    jobEntry: Entry,
    keys: Map<string, Entry>,
    jobKeys: readonly string[],
    workflowEnv: Env,
    workflowDefaults: RunDefaults,
  ): PlannedJob {
    const env = { ...workflowEnv, ...this.env(keys.get("env"), workflowEnv, "job") };
    const defaults = this.defaults(keys.get("defaults"), workflowDefaults, env);
    const timeout = keys.get("timeout-minutes");
    const needed = this.needs(keys.get("needs"), jobKeys);
    const ifCondition = this.condition(keys.get("if"));
    return {
      key: jobEntry.name,
      name: this.expandedText(keys.get("name"), env) ?? jobEntry.name,
      runsOn: this.runsOn(keys.get("runs-on"), jobEntry, env),
      timeoutMinutes:
        (timeout && this.reader.positiveNumber(timeout.value, timeout.key)) ?? DEFAULT_JOB_TIMEOUT_MINUTES,
      continueOnError: this.flag(keys.get("continue-on-error"), env) ?? false,
      env,
      needs: needed,
      ...(ifCondition === undefined ? {} : { ifCondition }),
      outputs: this.outputs(keys.get("outputs")),
      steps: this.steps(keys.get("steps"), jobEntry, env, defaults),
    };
  }

  /** true/false as written, or an expression known when planning (e.g. `${{ matrix.experimental }}`). */
  private flag(entry: Entry | undefined, env: Env): boolean | undefined {
    if (entry === undefined) return undefined;
    if (!isScalar(entry.value) || typeof entry.value.value !== "string") {
      return this.reader.boolean(entry.value, entry.key);
    }
    const value = this.plannedValue(entry.value, entry.key, entry.value.value, env);
    if (typeof value !== "string") return value === undefined ? undefined : isTruthy(value);
    const word = value.trim().toLowerCase();
    if (word === "true" || word === "false") return word === "true";
    this.problems.atNode(entry.value, entry.key, `must be true or false, not \`${value}\``);
    return undefined;
  }

  /**
   * A value written as text, with its expressions evaluated now. Exactly one `${{ }}` keeps the
   * value's type (e.g. `${{ fromJSON(inputs.versions) }}` is a list); values that exist only while
   * jobs run cannot shape the plan and are a problem.
   */
  private plannedValue(node: Node, key: string, raw: string, env: Env): unknown {
    const { text, issues, deferred } = interpolate(raw, this.scope(env), SECRET_ELSEWHERE);
    this.problems.expressionIssues(node, key, raw, issues);
    if (issues.length > 0) return undefined;
    if (deferred) {
      this.problems.atNode(
        node,
        key,
        `\`${raw.trim()}\` must be known before the jobs start: it can use github, env, vars, inputs and matrix, not needs, steps or status functions`,
      );
      return undefined;
    }
    const spans = findExpressions(raw.trim());
    const only = spans[0];
    if (spans.length === 1 && only?.inner !== undefined && only.start === 0 && only.end === raw.trim().length) {
      return evaluateExpression(only.inner, { ...this.contexts, env: plainEnv(env) });
    }
    return text;
  }

  /** `strategy:`; undefined when the job has none or it has no matrix. */
  private strategy(entry: Entry | undefined, env: Env): PlannedStrategy | undefined {
    if (entry === undefined) return undefined;
    const map = this.reader.mapping(entry.value, entry.key);
    if (map === undefined) return undefined;
    const keys = this.reader.keyed(map, entry.key, ["matrix", "fail-fast", "max-parallel"]);
    const maxParallel = keys.get("max-parallel");
    let max: number | undefined;
    if (maxParallel !== undefined) {
      const value = maxParallel.value;
      if (isScalar(value) && Number.isInteger(value.value) && (value.value as number) > 0) max = value.value as number;
      else this.problems.atNode(value, maxParallel.key, "must be a whole number greater than 0");
    }
    const failFast = this.flag(keys.get("fail-fast"), env) ?? true;
    const matrixEntry = keys.get("matrix");
    if (matrixEntry === undefined) return undefined;
    const spec = this.matrixSpec(matrixEntry, env);
    if (spec === undefined) return undefined;
    const combinations = expandMatrix(spec);
    if (combinations.length === 0) {
      this.problems.atNode(matrixEntry.keyNode, matrixEntry.key, "makes no jobs: every combination is excluded");
      return undefined;
    }
    if (combinations.length > MAX_MATRIX_JOBS) {
      this.problems.atNode(
        matrixEntry.keyNode,
        matrixEntry.key,
        `makes ${combinations.length} jobs; a matrix may make at most ${MAX_MATRIX_JOBS}, as on GitHub`,
      );
      return undefined;
    }
    return { combinations, failFast, ...(max === undefined ? {} : { maxParallel: max }) };
  }

  private matrixSpec(entry: Entry, env: Env): MatrixSpec | undefined {
    const value = this.matrixValue(entry.value, entry.key, env);
    if (value === undefined) return undefined;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.problems.atNode(entry.value, entry.key, "must be a mapping of keys to lists of values");
      return undefined;
    }
    const dimensions: Array<[string, unknown[]]> = [];
    const lists: Record<"include" | "exclude", MatrixCombination[]> = { include: [], exclude: [] };
    for (const [name, values] of Object.entries(value)) {
      if (values === undefined) return undefined; // already reported
      if (name === "include" || name === "exclude") {
        const entries = Array.isArray(values) ? values : [values];
        if (!entries.every((e) => typeof e === "object" && e !== null && !Array.isArray(e))) {
          this.problems.atNode(entry.value, `${entry.key}.${name}`, "must be a list of mappings");
          return undefined;
        }
        lists[name] = entries as MatrixCombination[];
      } else if (!Array.isArray(values) || values.length === 0) {
        this.problems.atNode(entry.value, `${entry.key}.${name}`, "must be a non-empty list of values");
        return undefined;
      } else dimensions.push([name, values]);
    }
    if (dimensions.length === 0 && lists.include.length === 0) {
      this.problems.atNode(entry.value, entry.key, "has no keys and no include: it makes no jobs");
      return undefined;
    }
    return { dimensions, ...lists };
  }

  /** The matrix as plain values, every text in it evaluated now. */
  private matrixValue(node: Node | undefined, key: string, env: Env): unknown {
    if (isScalar(node) && typeof node.value === "string") return this.plannedValue(node, key, node.value, env);
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const child of this.reader.entries(node, key))
        out[child.name] = this.matrixValue(child.value, child.key, env);
      return out;
    }
    if (isSeq(node)) return node.items.map((item, i) => this.matrixValue(this.reader.node(item), `${key}[${i}]`, env));
    return this.reader.toJS(node) ?? null;
  }

  private steps(entry: Entry | undefined, jobEntry: Entry, env: Env, defaults: RunDefaults): PlannedStepDef[] {
    if (entry === undefined) {
      this.problems.atNode(jobEntry.keyNode, jobEntry.key, "has no steps:");
      return [];
    }
    const seq = this.reader.sequence(entry.value, entry.key);
    if (seq === undefined) return [];
    if (seq.items.length === 0) this.problems.atNode(seq, entry.key, "has no steps");
    const steps: PlannedStepDef[] = [];
    const ids = new Set<string>();
    seq.items.forEach((item, index) => {
      const step = this.step(this.reader.node(item), `${entry.key}[${index}]`, index, env, defaults, ids);
      if (step !== undefined) steps.push(step);
    });
    return steps;
  }

  private step(
    node: Node | undefined,
    key: string,
    index: number,
    jobEnv: Env,
    defaults: RunDefaults,
    ids: Set<string>,
  ): PlannedStepDef | undefined {
    const map = this.reader.mapping(node, key);
    if (map === undefined) return undefined;
    const keys = this.reader.keyed(map, key, STEP_KEYS);
    const env = { ...jobEnv, ...this.env(keys.get("env"), jobEnv, "step") };
    const run = keys.get("run");
    const uses = keys.get("uses");
    if (run === undefined && uses === undefined) {
      this.problems.atNode(map, key, "a step needs either run: or uses:");
      return undefined;
    }
    if (run !== undefined && uses !== undefined) {
      this.problems.atNode(uses.keyNode, key, "a step has either run: or uses:, not both");
      return undefined;
    }

    const idEntry = keys.get("id");
    const id = idEntry && this.reader.text(idEntry.value, idEntry.key);
    if (idEntry !== undefined && id !== undefined) {
      if (!STEP_ID.test(id)) {
        this.problems.atNode(
          idEntry.value,
          idEntry.key,
          "an id starts with a letter or _ and has only letters, digits, - and _",
        );
      } else if (ids.has(id)) {
        this.problems.atNode(idEntry.value, idEntry.key, `another step of this job already has id \`${id}\``);
      }
      ids.add(id);
    }
    const timeout = keys.get("timeout-minutes");
    const timeoutMinutes = timeout && this.reader.positiveNumber(timeout.value, timeout.key);
    const condition = this.condition(keys.get("if"));
    const common = {
      index,
      ...(id === undefined ? {} : { id }),
      env,
      ...(condition === undefined ? {} : { condition }),
      continueOnError: this.flag(keys.get("continue-on-error"), env) ?? false,
      ...(timeoutMinutes === undefined ? {} : { timeoutMinutes }),
    };
    const name = this.expandedText(keys.get("name"), env, { runtime: true });

    if (run !== undefined) {
      const script = this.expandedText(run, env, { runtime: true }) ?? "";
      const with_ = keys.get("with");
      if (with_ !== undefined) this.problems.atNode(with_.keyNode, with_.key, "with: only applies to uses: steps");
      const workingDirectory =
        this.expandedText(keys.get("working-directory"), env, { runtime: true }) ?? defaults.workingDirectory;
      const firstLine = script.split("\n").find((line) => line.trim() !== "") ?? "";
      const step: PlannedRunStep = {
        ...common,
        name: name ?? `Run ${firstLine.trim()}`,
        kind: "run",
        script,
        shell: this.shell(keys.get("shell"), env) ?? defaults.shell ?? DEFAULT_SHELL,
        ...(workingDirectory === undefined ? {} : { workingDirectory }),
      };
      return step;
    }

    const action = uses === undefined ? undefined : this.reader.text(uses.value, uses.key);
    if (uses === undefined || action === undefined) return undefined;
    for (const runOnly of ["shell", "working-directory"]) {
      const entry = keys.get(runOnly);
      if (entry !== undefined) this.problems.atNode(entry.keyNode, entry.key, `${runOnly}: only applies to run: steps`);
    }
    if (!CHECKOUT_USES.test(action.trim())) return this.actionStep(uses, action, keys.get("with"), env, common, name);
    const step: PlannedCheckoutStep = {
      ...common,
      name: name ?? `Run ${action.trim()}`,
      kind: "checkout",
      fetchDepth: DEFAULT_FETCH_DEPTH,
      ...this.checkoutInputs(keys.get("with"), env),
    };
    return step;
  }

  /**
   * `uses:` an action from a repository. What kind of action it is (JavaScript, composite or Docker)
   * is in its action.yml, which the executor reads when it fetches it, before the VM boots; only a
   * `docker://` image and a local `./` action can be refused here.
   */
  private actionStep(
    uses: Entry,
    action: string,
    withEntry: Entry | undefined,
    env: Env,
    common: Omit<PlannedActionStep, "kind" | "uses" | "inputs" | "name">,
    name: string | undefined,
  ): PlannedActionStep | undefined {
    const reference = parseActionReference(action);
    if ("error" in reference) {
      this.problems.atNode(uses.value, uses.key, reference.error);
      return undefined;
    }
    if (reference.kind !== "repository" || unsupportedActionAdvice(action, this.services) !== undefined) {
      this.problems.atNode(uses.value, uses.key, `action \`${action}\` is not supported: ${SUPPORTED_STEPS}`, {
        suggestion: actionSuggestion(action),
      });
      return undefined;
    }
    return {
      ...common,
      name: name ?? `Run ${action.trim()}`,
      kind: "action",
      uses: action.trim(),
      inputs: this.actionInputs(withEntry, env),
    };
  }

  /** `with:` of an action step: text kept for run time; a whole `${{ secrets.X }}` travels sealed. */
  private actionInputs(entry: Entry | undefined, env: Env): Record<string, EnvValue> {
    const inputs: Record<string, EnvValue> = {};
    if (entry === undefined) return inputs;
    const map = this.reader.mapping(entry.value, entry.key);
    if (map === undefined) return inputs;
    for (const input of this.reader.entries(map, entry.key)) {
      if (!isScalar(input.value)) {
        this.problems.atNode(
          input.value ?? input.keyNode,
          input.key,
          "inputs are strings, numbers or booleans, not a mapping or list",
        );
        continue;
      }
      const raw = this.reader.text(input.value, input.key, "");
      if (raw === undefined) continue;
      const secret = wholeSecretReference(raw);
      if (secret !== undefined) {
        inputs[input.name] = { fromSecret: secret };
        continue;
      }
      // Values that need run-time contexts (secrets in text among them) are kept as written and
      // evaluated by the executor just before the step.
      const { text, issues } = interpolate(raw, this.scope(env, "step"), SECRET_ELSEWHERE);
      this.problems.expressionIssues(input.value, input.key, raw, issues);
      inputs[input.name] = text;
    }
    return inputs;
  }

  private checkoutInputs(entry: Entry | undefined, env: Env): CheckoutInputs {
    if (entry === undefined) return {};
    const map = this.reader.mapping(entry.value, entry.key);
    if (map === undefined) return {};
    const inputs: CheckoutInputs = {};
    for (const input of this.reader.entries(map, entry.key)) {
      if (!CHECKOUT_INPUTS.includes(input.name)) {
        this.problems.atNode(
          input.keyNode,
          input.key,
          `actions/checkout input \`${input.name}\` is not supported by the built-in checkout; supported: ${CHECKOUT_INPUTS.join(", ")}`,
          { suggestion: checkoutInputSuggestion(input.name, CHECKOUT_INPUTS) },
        );
        continue;
      }
      if (input.name === "token") {
        this.checkoutToken(input, inputs);
        continue;
      }
      const value = this.expandedText(input, env);
      if (value === undefined) continue;
      if (input.name === "submodules" || input.name === "clean") {
        const choice = value.trim().toLowerCase();
        const allowed = input.name === "submodules" ? ["true", "false", "recursive"] : ["true", "false"];
        if (!allowed.includes(choice)) {
          this.problems.atNode(input.value, input.key, `must be ${allowed.join(", ")}, not \`${value}\``);
        } else if (input.name === "clean") inputs.clean = choice === "true";
        else if (choice !== "false") inputs.submodules = choice as "true" | "recursive";
      } else if (input.name === "fetch-depth") {
        const depth = Number(value.trim());
        if (value.trim() === "" || !Number.isInteger(depth) || depth < 0) {
          this.problems.atNode(input.value, input.key, `must be a whole number, 0 for full history, not \`${value}\``);
        } else inputs.fetchDepth = depth;
      } else if (input.name === "path" && value !== "" && !isInsideWorkspace(value)) {
        // actions/checkout refuses a path outside GITHUB_WORKSPACE too; here the workspace's own
        // place in the guest is not known yet, so only relative paths that stay below it are taken.
        this.problems.atNode(
          input.value,
          input.key,
          `\`${value}\` is not inside the workspace: give a relative path such as \`src/other-repo\` (no leading / and no .. that leaves it)`,
        );
      } else if (value !== "") {
        inputs[input.name as "repository" | "ref" | "path"] = value;
      }
    }
    return inputs;
  }

  /**
   * `token:` is the job's own token (`github.token`, the default) or a secret, which
   * travels sealed; a token written into the workflow would be readable by anyone who reads it.
   */
  private checkoutToken(input: Entry, inputs: CheckoutInputs): void {
    const raw = this.reader.text(input.value, input.key);
    if (raw === undefined) return;
    if (/^\s*\$\{\{\s*github\.token\s*\}\}\s*$/i.test(raw)) return;
    const secret = wholeSecretReference(raw);
    if (secret !== undefined) inputs.tokenSecret = secret;
    else {
      this.problems.atNode(
        input.value,
        input.key,
        `token must be \${{ secrets.NAME }} or \${{ github.token }}: a token written in the workflow is readable by anyone who can read the file`,
      );
    }
  }
}

interface PlannedStrategy {
  combinations: MatrixCombination[];
  failFast: boolean;
  maxParallel?: number;
}

function isInsideWorkspace(relative: string): boolean {
  if (relative.startsWith("/")) return false;
  const normalized = posix.normalize(relative);
  return normalized !== ".." && !normalized.startsWith("../");
}

function plainEnv(env: Env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === "string"));
}

function uniqueProblems(problems: readonly WorkflowProblem[]): WorkflowProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.line}:${p.column}:${p.key}:${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Parses an Actions workflow into planned jobs. Throws `WorkflowValidationError` with every problem
 * found (file, line, column and key of each) when any part cannot run on Solstice.
 */
export function parseWorkflow(text: string, opts: ParseWorkflowOptions): Workflow {
  const lineCounter = new LineCounter();
  const problems = new ProblemCollector(opts.file, text, lineCounter);
  if (Buffer.byteLength(text, "utf8") > MAX_WORKFLOW_BYTES) {
    problems.at(0, "", `the file is larger than ${MAX_WORKFLOW_BYTES} bytes; a workflow file cannot be this big`);
    throw new WorkflowValidationError(opts.file, problems.problems);
  }
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  for (const error of doc.errors) {
    problems.at(error.pos[0], "", `YAML syntax error: ${error.message.split("\n")[0]}`);
  }
  if (problems.problems.length > 0) throw new WorkflowValidationError(opts.file, problems.problems);

  const reader = new YamlReader(doc, problems);
  const planner = new Planner(reader, opts.contexts ?? {}, opts.services ?? new Set());
  const root = reader.node(doc.contents);
  if (!isMap(root)) {
    problems.atNode(root, "", "a workflow file is a mapping with at least `jobs:`");
    throw new WorkflowValidationError(opts.file, problems.problems);
  }
  const keys = reader.keyed(root, "", WORKFLOW_KEYS);
  const nameEntry = keys.get("name");
  const name = planner.expandedText(nameEntry, {}) ?? opts.file;
  const onEntry = keys.get("on");
  let on: unknown;
  try {
    on = reader.toJS(onEntry?.value);
  } catch (error) {
    problems.atNode(onEntry?.value, "on", `cannot be read: ${(error as Error).message}`);
  }
  const env = planner.env(keys.get("env"), {}, "job");
  const defaults = planner.defaults(keys.get("defaults"), {}, env);

  const jobs: PlannedJob[] = [];
  const jobsEntry = keys.get("jobs");
  if (jobsEntry === undefined) {
    problems.atNode(root, "jobs", "the workflow has no jobs: section");
  } else {
    const jobsMap = isScalar(jobsEntry.value) && jobsEntry.value.value === null ? undefined : jobsEntry.value;
    const map = jobsMap === undefined ? undefined : reader.mapping(jobsMap, "jobs");
    const entries = map === undefined ? [] : reader.entries(map, "jobs");
    if (jobsMap === undefined || (map !== undefined && entries.length === 0)) {
      problems.atNode(jobsEntry.keyNode, "jobs", "has no jobs: define at least one job with runs-on and steps");
    }
    const jobKeys = entries.map((e) => e.name);
    for (const entry of entries) {
      if (opts.job === undefined || entry.name === opts.job) jobs.push(...planner.jobs(entry, jobKeys, env, defaults));
    }
  }
  // A matrix plans a job once per combination, so one mistake can be found once per combination.
  if (problems.problems.length > 0) throw new WorkflowValidationError(opts.file, uniqueProblems(problems.problems));
  return { name, file: opts.file, on, jobs, source: text, ...(opts.contexts ? { contexts: opts.contexts } : {}) };
}
