import { type Entry, getLocation, InvalidKdlError, type Node } from "@bgotink/kdl";
import { parseCompat } from "@bgotink/kdl/v1-compat";
import { interpolate, type PlanScope, wholeSecretReference } from "../expressions.ts";
import { type MatrixCombination, matrixJobName, type StrategyContext } from "../matrix.ts";
import { DEFAULT_JOB_TIMEOUT_MINUTES, MAX_WORKFLOW_BYTES, type ParseWorkflowOptions } from "../parse-workflow.ts";
import { DEFAULT_SHELL } from "../shells.ts";
import { WorkflowValidationError } from "../workflow-errors.ts";
import type { Env, PlanContexts, PlannedJob, PlannedStepDef, Workflow } from "../workflow-plan.ts";
import { KdlProblems, KdlReader, type ReadNode } from "./kdl-reader.ts";
import { HOMES, SHAPES } from "./kdl-schema.ts";

/** Job ids are keys as in `jobs:` of an Actions file: they name the job in `--job` and in logs. */
const JOB_ID = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** A multi-OS job's images are a matrix of this one key, so `${{ matrix.os }}` names the image. */
const OS_KEY = "os";

const SECRET_IN_RUN = `secrets are not substituted into scripts; set a variable from it (env TOKEN="\${{ secrets.TOKEN }}") and read $TOKEN in the script`;
const SECRET_ELSEWHERE = `a secret may only be a whole env value, e.g. env TOKEN="\${{ secrets.TOKEN }}"`;

/** A job's `os "label" { }` block: what that image does differently. */
interface Override {
  readonly read: ReadNode;
  readonly setup?: ReadNode;
}

/** A job read once; `plan` makes one PlannedJob per image from it. */
interface JobSpec {
  readonly read: ReadNode;
  readonly id: string;
  readonly labels: readonly string[];
  readonly overrides: ReadonlyMap<string, Override>;
  readonly steps: readonly ReadNode[];
  readonly setup?: ReadNode;
}

class KdlPlanner {
  constructor(
    private readonly reader: KdlReader,
    private readonly contexts: PlanContexts,
  ) {}

  private get problems(): KdlProblems {
    return this.reader.problems;
  }

  private scope(env: Env): PlanScope {
    return { contexts: this.contexts as Record<string, unknown>, env };
  }

  /**
   * A text value with its `${{ }}` expressions substituted, as the Actions front-end does; with
   * `runtime`, text that needs values known only while the job runs is kept for the executor.
   */
  text(
    entry: Entry | undefined,
    key: string,
    env: Env,
    { secretRule = SECRET_ELSEWHERE, runtime = true }: { secretRule?: string; runtime?: boolean } = {},
  ): string | undefined {
    const raw = this.reader.text(entry, key);
    if (raw === undefined || entry === undefined) return undefined;
    const { text, issues, deferred } = interpolate(raw, this.scope(env), secretRule);
    for (const issue of issues) {
      this.problems.at(this.problems.inValue(entry, issue.expression), key, issue.message, issue.suggestion);
    }
    if (deferred && !runtime) {
      this.problems.atValue(
        entry,
        key,
        `\`${raw.trim()}\` uses values that exist only while the job runs; here only github, env, vars and inputs can be used`,
      );
    }
    return text;
  }

  /** The variables of every `env` node among `children`, later ones winning, over `outer`. */
  env(children: readonly Node[], key: string, outer: Env): Env {
    const env: Env = { ...outer };
    for (const node of children.filter((c) => c.getName() === "env")) {
      const read = this.reader.read(node, `${key}.env`, SHAPES.env);
      const scope = this.scope(env);
      for (const [name, entry] of read.properties) {
        const variableKey = `${key}.env.${name}`;
        const raw = this.reader.text(entry, variableKey, { scalar: true });
        if (raw === undefined) continue;
        const secret = wholeSecretReference(raw);
        if (secret !== undefined) {
          env[name] = { fromSecret: secret };
          continue;
        }
        // As in the Actions front-end: values that need run-time contexts are kept for the executor.
        const { text, issues } = interpolate(raw, scope, SECRET_ELSEWHERE);
        for (const issue of issues) {
          this.problems.at(
            this.problems.inValue(entry, issue.expression),
            variableKey,
            issue.message,
            issue.suggestion,
          );
        }
        env[name] = text;
      }
    }
    return env;
  }

  /** Reads a `job` node, reporting what is wrong with it. */
  job(node: Node, index: number, seen: Set<string>): JobSpec {
    const idEntry = node.getPropertyEntry("id");
    const rawId = idEntry?.getValue();
    const key = typeof rawId === "string" && rawId !== "" ? `job.${rawId}` : `job[${index}]`;
    const read = this.reader.read(node, key, SHAPES.job);
    const id = this.reader.text(idEntry, `${key}.id`);
    if (idEntry === undefined) {
      this.problems.atElement(node, key, 'a job needs an id, e.g. job id="build"');
    } else if (id !== undefined && !JOB_ID.test(id)) {
      this.problems.atValue(
        idEntry,
        `${key}.id`,
        "an id starts with a letter or _ and has only letters, digits, - and _",
      );
    } else if (id !== undefined && seen.has(id)) {
      this.problems.atValue(idEntry, `${key}.id`, `another job already has id \`${id}\``);
    }
    if (id !== undefined) seen.add(id);

    const labels = this.labels(read);
    const overrides = this.overrides(read, labels);
    const steps = read.children
      .filter((c) => c.getName() === "step")
      .map((step, i) => this.reader.read(step, `${key}.step[${i}]`, SHAPES.step));
    if (steps.length === 0) {
      this.problems.atElement(node, key, 'has no steps: add at least one, e.g. step name="Test" run="make test"');
    }
    const setup = this.setup(read, key);
    return { read, id: id ?? key, labels, overrides, steps, ...(setup === undefined ? {} : { setup }) };
  }

  /** `runs_on="label"`, or `runs_on "a" "b" { }` for one job per image; exactly one of the two. */
  private labels(job: ReadNode): string[] {
    const property = job.properties.get("runs_on");
    const nodes = job.children.filter((c) => c.getName() === "runs_on");
    const key = `${job.key}.runs_on`;
    if (property === undefined && nodes.length === 0) {
      this.problems.atElement(
        job.node,
        job.key,
        'has no runs_on: name the image to run on, e.g. runs_on="debian-12", or several: runs_on "tiny" "debian-12"',
      );
      return [];
    }
    const second = property === undefined ? nodes[1] : nodes[0];
    if (second !== undefined) {
      this.problems.atElement(second, key, "runs_on is given twice; list every image in one runs_on node");
      return [];
    }
    const entries =
      property !== undefined ? [property] : [...this.reader.read(nodes[0] as Node, key, SHAPES.runsOn).args];
    const labels: string[] = [];
    for (const entry of entries) {
      const label = this.text(entry, key, {}, { runtime: false })?.trim();
      if (label === undefined) continue;
      if (label === "") this.problems.atValue(entry, key, "a label cannot be empty");
      else if (labels.includes(label)) this.problems.atValue(entry, key, `label \`${label}\` is listed twice`);
      else labels.push(label);
    }
    return labels;
  }

  /** The job's `os "label" { }` nodes, by label; each must name one of the job's labels. */
  private overrides(job: ReadNode, labels: readonly string[]): Map<string, Override> {
    const byLabel = new Map<string, Override>();
    for (const node of job.children.filter((c) => c.getName() === "os")) {
      const label = this.osLabel(node, labels, job.key);
      const read = this.reader.read(node, `${job.key}.os.${label ?? "?"}`, SHAPES.jobOs);
      if (label === undefined) continue;
      const setup = this.setup(read, read.key);
      if (byLabel.has(label)) this.problems.atElement(node, read.key, `a second os "${label}" block; merge the two`);
      else byLabel.set(label, { read, ...(setup === undefined ? {} : { setup }) });
    }
    return byLabel;
  }

  /** The label an `os` node names, when it is one of the job's; undefined (reported) otherwise. */
  private osLabel(node: Node, labels: readonly string[], parentKey: string): string | undefined {
    const entry = node.getArgumentEntry(0);
    const label = entry === undefined ? undefined : this.reader.text(entry, `${parentKey}.os`);
    if (entry === undefined || label === undefined || labels.length === 0) return undefined;
    if (!labels.includes(label)) {
      this.problems.atValue(
        entry,
        `${parentKey}.os`,
        `\`${label}\` is not one of this job's runs_on labels (${labels.join(", ")})`,
      );
      return undefined;
    }
    return label;
  }

  /** The one `setup` node of a job or an `os` block. */
  private setup(parent: ReadNode, key: string): ReadNode | undefined {
    const nodes = parent.children.filter((c) => c.getName() === "setup");
    const second = nodes[1];
    if (second !== undefined)
      this.problems.atElement(second, `${key}.setup`, "a second setup; put both scripts in one");
    const first = nodes[0];
    if (first === undefined) return undefined;
    const read = this.reader.read(first, `${key}.setup`, SHAPES.setup);
    if (!read.properties.has("run")) {
      this.problems.atElement(first, read.key, 'a setup needs run=, e.g. setup run="./ci/setup.sh"');
    }
    return read;
  }

  /** The planned jobs of one read job: one per image, the image's overrides applied. */
  plan(spec: JobSpec, workflowEnv: Env): PlannedJob[] {
    const { labels } = spec;
    const stepOverrides = spec.steps.map((step) => this.stepOverrides(step, labels));
    // A job with no usable label is still planned once, so that all its problems are found now.
    if (labels.length <= 1) return [this.planImage(spec, labels[0] ?? "", workflowEnv, stepOverrides)];
    return labels.map((label, index) => {
      const matrix: MatrixCombination = { [OS_KEY]: label };
      // Each image is worth its own result: one image failing does not cancel the others.
      const strategy: StrategyContext = {
        "fail-fast": false,
        "job-index": index,
        "job-total": labels.length,
        "max-parallel": labels.length,
      };
      // As for a matrix: the job's text is planned with this image's `matrix` and `strategy`.
      const planner = new KdlPlanner(this.reader, { ...this.contexts, matrix, strategy: { ...strategy } });
      const job = planner.planImage(spec, label, workflowEnv, stepOverrides);
      const named = spec.read.properties.get("name")?.getValue();
      const nameUsesMatrix = typeof named === "string" && /\$\{\{[^}]*matrix/i.test(named);
      return { ...job, name: nameUsesMatrix ? job.name : matrixJobName(job.name, matrix), matrix, strategy };
    });
  }

  /** The job as it runs on one image: that image's env, setup and scripts. */
  private planImage(
    spec: JobSpec,
    label: string,
    workflowEnv: Env,
    stepOverrides: ReadonlyArray<ReadonlyMap<string, Entry>>,
  ): PlannedJob {
    const { read, id } = spec;
    const jobEnv = this.env(read.children, read.key, workflowEnv);
    const override = spec.overrides.get(label);
    const env = override === undefined ? jobEnv : this.env(override.read.children, override.read.key, jobEnv);
    const setup = override?.setup ?? spec.setup;
    const steps: PlannedStepDef[] = [];
    if (this.reader.flag(read.properties.get("checkout"), `${read.key}.checkout`) ?? true) {
      // As the original runner did: every job starts in a checkout of the commit under test.
      steps.push({
        index: 0,
        kind: "checkout",
        name: "Check out the repository",
        env,
        continueOnError: false,
        fetchDepth: 1,
      });
    }
    if (setup !== undefined) steps.push(this.runStep(setup, steps.length, env, "Setup"));
    spec.steps.forEach((step, i) => {
      steps.push(this.runStep(step, steps.length, env, undefined, stepOverrides[i]?.get(label)));
    });
    const timeout = this.reader.minutes(read.properties.get("timeout_minutes"), `${read.key}.timeout_minutes`);
    return {
      key: id,
      name: this.text(read.properties.get("name"), `${read.key}.name`, env, { runtime: false }) ?? id,
      runsOn: label,
      timeoutMinutes: timeout ?? DEFAULT_JOB_TIMEOUT_MINUTES,
      continueOnError: false,
      env,
      needs: [],
      outputs: {},
      steps,
    };
  }

  /** A step's `os "label" run="…"` scripts, by label. */
  private stepOverrides(step: ReadNode, labels: readonly string[]): Map<string, Entry> {
    const byLabel = new Map<string, Entry>();
    for (const node of step.children.filter((c) => c.getName() === "os")) {
      const label = this.osLabel(node, labels, step.key);
      const read = this.reader.read(node, `${step.key}.os.${label ?? "?"}`, SHAPES.stepOs);
      const run = read.properties.get("run");
      if (run === undefined) this.problems.atElement(node, read.key, `an os override of a step needs run=`);
      if (label === undefined || run === undefined) continue;
      if (byLabel.has(label)) this.problems.atElement(node, read.key, `a second os "${label}" for this step`);
      else byLabel.set(label, run);
    }
    return byLabel;
  }

  private runStep(
    step: ReadNode,
    index: number,
    jobEnv: Env,
    defaultName?: string,
    runOverride?: Entry,
  ): PlannedStepDef {
    const env = this.env(step.children, step.key, jobEnv);
    const runEntry = runOverride ?? step.properties.get("run");
    if (runEntry === undefined && step.node.getName() === "step") {
      this.problems.atElement(step.node, step.key, 'a step needs run=, e.g. step name="Test" run="make test"');
    }
    const script = this.text(runEntry, `${step.key}.run`, env, { secretRule: SECRET_IN_RUN }) ?? "";
    const name = this.text(step.properties.get("name"), `${step.key}.name`, env);
    const firstLine =
      script
        .split("\n")
        .find((line) => line.trim() !== "")
        ?.trim() ?? "";
    return {
      index,
      kind: "run",
      name: name ?? defaultName ?? `Run ${firstLine}`,
      env,
      continueOnError: false,
      script,
      shell: DEFAULT_SHELL,
    };
  }
}

/**
 * KDL's syntax errors as problems: the KDL 2 parser's, which is tried first and is the current
 * language. The parser can also fail in its own code (@bgotink/kdl 0.4.0 throws a RangeError for a
 * `/` at the end of the input): that is reported at the top of the file rather than thrown.
 */
function syntaxProblems(error: unknown, problems: KdlProblems): void {
  const current = error instanceof AggregateError ? error.errors[0] : error;
  if (!(current instanceof InvalidKdlError)) {
    const reason = current instanceof Error ? `${current.name}: ${current.message}` : String(current);
    problems.at({ line: 1, column: 1 }, "", `KDL syntax error: the KDL parser could not read the file (${reason})`);
    return;
  }
  for (const detail of current.flat()) {
    const message = detail.message.replace(/ at (\d+:\d+|end of input)$/, "");
    problems.at(detail.start ?? { line: 1, column: 1 }, "", `KDL syntax error: ${message}`);
  }
}

/**
 * Plans a KDL workflow (`.solstice/workflow.kdl`) into the same jobs and steps as an Actions file.
 * Throws `WorkflowValidationError` with every problem found when any part cannot run.
 */
export function parseKdlWorkflow(text: string, opts: ParseWorkflowOptions): Workflow {
  const problems = new KdlProblems(opts.file, text);
  // In reading order, whichever part of the planner found them, so a user fixes the file from the top.
  const fail = () =>
    new WorkflowValidationError(
      opts.file,
      [...problems.problems].sort((a, b) => a.line - b.line || a.column - b.column),
    );
  if (Buffer.byteLength(text, "utf8") > MAX_WORKFLOW_BYTES) {
    problems.at(
      { line: 1, column: 1 },
      "",
      `the file is larger than ${MAX_WORKFLOW_BYTES} bytes; a workflow file cannot be this big`,
    );
    throw fail();
  }
  let nodes: Node[];
  try {
    // KDL 2 first, then KDL 1, in which the original Solstice workflows were written.
    nodes = parseCompat(text, { storeLocations: true }).nodes;
  } catch (error) {
    syntaxProblems(error, problems);
    throw fail();
  }

  const reader = new KdlReader(problems, HOMES);
  const planner = new KdlPlanner(reader, opts.contexts ?? {});
  const roots = nodes.filter((n) => n.getName() === "workflow");
  for (const node of nodes) {
    if (node.getName() === "workflow" && node === roots[0]) continue;
    const name = node.getName();
    problems.atElement(
      node,
      name,
      name === "workflow"
        ? "a second workflow node; a file holds one"
        : `unknown node \`${name}\` at the top of the file`,
      name === "workflow"
        ? undefined
        : HOMES[name] !== undefined
          ? `\`${name}\` belongs ${HOMES[name]}`
          : "the file is one workflow { } node",
    );
  }
  const root = roots[0];
  if (root === undefined) {
    if (nodes.length === 0)
      problems.at({ line: 1, column: 1 }, "", 'the file has no workflow: write workflow name="…" { job … }');
    throw fail();
  }
  const workflow = reader.read(root, "workflow", SHAPES.workflow);
  const env = planner.env(workflow.children, "workflow", {});
  const name = planner.text(workflow.properties.get("name"), "workflow.name", env, { runtime: false }) ?? opts.file;
  const seen = new Set<string>();
  const specs = workflow.children.filter((c) => c.getName() === "job").map((node, i) => planner.job(node, i, seen));
  if (specs.length === 0) {
    problems.at(
      getLocation(root)?.start ?? { line: 1, column: 1 },
      "workflow",
      'has no jobs: add one, e.g. job id="build" runs_on="debian-12" { step run="make" }',
    );
  }
  const jobs = specs.flatMap((spec) => planner.plan(spec, env));
  if (problems.problems.length > 0) throw fail();
  return { name, file: opts.file, on: null, jobs, ...(opts.contexts ? { contexts: opts.contexts } : {}) };
}
