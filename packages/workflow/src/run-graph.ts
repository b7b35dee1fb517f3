import { Outcome } from "@solstice/protocol";
import { ExpressionError, evaluateCondition } from "./expression-engine.ts";
import { WorkflowError } from "./workflow-errors.ts";
import type { PlanContexts, PlannedJob } from "./workflow-plan.ts";

/** How one job ended, and its outputs for the jobs that need it. */
export interface FinishedJob {
  readonly result: Outcome;
  readonly outputs: Readonly<Record<string, string>>;
}

/** `needs.<job>.result` and `needs.<job>.outputs`, as Actions writes them. */
export type NeedsContext = Record<string, { result: string; outputs: Record<string, string> }>;

export interface RunGraphOptions {
  /** The jobs to run, one per matrix combination; their `needs` outside this list count as met. */
  readonly jobs: readonly PlannedJob[];
  /** The workflow's contexts, for the jobs' `if:`. */
  readonly contexts: PlanContexts;
  /** How many jobs may run at once in all (each matrix also keeps to its max-parallel). */
  readonly concurrency: number;
  /** Aborting cancels the running jobs; the ones not started are cancelled without running. */
  readonly signal: AbortSignal;
  /** Runs one job to its end; it must resolve, with CANCELLED when `signal` aborts it. */
  run(job: PlannedJob, needs: NeedsContext, signal: AbortSignal): Promise<FinishedJob>;
  /** A job that does not run: skipped by its `if:` or its needs, or cancelled (fail-fast, Ctrl-C). */
  notRun(job: PlannedJob, result: Outcome, reason: string): void;
  /**
   * Plans a job whose matrix comes from its needs' outputs (`matrixFromNeeds`) once they finished
   * and its `if:` holds: its combinations take its place (`planAfterNeeds`). Throwing fails the job.
   */
  expand?(job: PlannedJob, needs: NeedsContext): PlannedJob[];
}

const RESULT_WORDS: Record<Outcome, string> = {
  [Outcome.UNSPECIFIED]: "failure",
  [Outcome.SUCCESS]: "success",
  [Outcome.FAILURE]: "failure",
  [Outcome.CANCELLED]: "cancelled",
  [Outcome.SKIPPED]: "skipped",
};

/**
 * Runs a workflow's jobs as a graph, as a forge does: a job starts once every job it needs has
 * finished (all of its matrix), when its `if:` (implicitly `success()`) holds against the needs'
 * results; a matrix with fail-fast cancels its other jobs when one fails; `max-parallel` and
 * `concurrency` bound how many run at once. Resolves with every job's result.
 */
export async function runGraph(options: RunGraphOptions): Promise<Map<PlannedJob, FinishedJob>> {
  checkNoCycle(options.jobs);
  // Grows when a job whose matrix comes from its needs is planned: its combinations take its place.
  const jobs = [...options.jobs];
  const finished = new Map<PlannedJob, FinishedJob>();
  const running = new Map<PlannedJob, { controller: AbortController; done: Promise<void> }>();
  const pending = new Set(jobs);
  const selectedKeys = new Set(jobs.map((j) => j.key));
  const failedFast = new Set<string>();

  const instancesOf = (key: string) => jobs.filter((j) => j.key === key);
  const keyDone = (key: string) => instancesOf(key).every((j) => finished.has(j));
  const finishWithout = (job: PlannedJob, result: Outcome, reason: string) => {
    pending.delete(job);
    finished.set(job, { result, outputs: {} });
    options.notRun(job, result, reason);
  };

  const cancelMatrix = (job: PlannedJob) => {
    failedFast.add(job.key);
    for (const sibling of instancesOf(job.key)) {
      if (pending.has(sibling)) finishWithout(sibling, Outcome.CANCELLED, `fail-fast: ${job.name} failed`);
      running.get(sibling)?.controller.abort(new Error(`fail-fast: ${job.name} failed`));
    }
  };

  const start = (job: PlannedJob, needs: NeedsContext) => {
    pending.delete(job);
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal.reason);
    options.signal.addEventListener("abort", onAbort, { once: true });
    const done = options.run(job, needs, controller.signal).then(
      (result) => result,
      (error: unknown): FinishedJob => {
        options.notRun(job, Outcome.FAILURE, error instanceof Error ? error.message : String(error));
        return { result: Outcome.FAILURE, outputs: {} };
      },
    );
    running.set(job, {
      controller,
      done: done.then((result) => {
        options.signal.removeEventListener("abort", onAbort);
        running.delete(job);
        finished.set(job, result);
        const failFast = job.strategy?.["fail-fast"] ?? false;
        if (result.result === Outcome.FAILURE && !job.continueOnError && failFast && !failedFast.has(job.key)) {
          cancelMatrix(job);
        }
      }),
    });
  };

  const expand = (job: PlannedJob, needs: NeedsContext) => {
    let combinations: PlannedJob[];
    try {
      if (options.expand === undefined) throw new Error("this run cannot plan a matrix made from needs' outputs");
      combinations = options.expand(job, needs);
    } catch (error) {
      finishWithout(job, Outcome.FAILURE, `its matrix cannot be planned: ${(error as Error).message}`);
      return;
    }
    pending.delete(job);
    jobs.splice(jobs.indexOf(job), 1, ...combinations);
    for (const combination of combinations) pending.add(combination);
  };

  /** Starts or settles every pending job it can; true when it did anything. */
  const schedulePass = (): boolean => {
    let progressed = false;
    for (const job of [...pending]) {
      if (options.signal.aborted) {
        finishWithout(job, Outcome.CANCELLED, "the run was cancelled");
        progressed = true;
        continue;
      }
      const needed = job.needs.filter((key) => selectedKeys.has(key));
      if (!needed.every(keyDone)) continue;
      const needs = needsContext(needed, jobs, finished);
      const decision = decideIf(job, needs, options);
      if (decision !== true) {
        finishWithout(job, decision.result, decision.reason);
        progressed = true;
        continue;
      }
      if (job.matrixFromNeeds) {
        expand(job, needs);
        progressed = true;
        continue;
      }
      if (running.size >= options.concurrency) continue;
      const siblingsRunning = [...running.keys()].filter((j) => j.key === job.key).length;
      if (siblingsRunning >= (job.strategy?.["max-parallel"] ?? Number.POSITIVE_INFINITY)) continue;
      start(job, needs);
      progressed = true;
    }
    return progressed;
  };

  for (;;) {
    while (schedulePass()) {}
    if (running.size === 0) {
      // Only reachable when a job needs one that can never finish; say so rather than hang.
      for (const job of pending) finishWithout(job, Outcome.SKIPPED, "its needs cannot be met");
      return finished;
    }
    await Promise.race([...running.values()].map((r) => r.done));
  }
}

/** The aggregate of each needed job over its matrix: failed if any failed, as on GitHub. */
function needsContext(
  needed: readonly string[],
  jobs: readonly PlannedJob[],
  finished: ReadonlyMap<PlannedJob, FinishedJob>,
): NeedsContext {
  const context: NeedsContext = {};
  for (const key of needed) {
    const results: Outcome[] = [];
    const outputs: Record<string, string> = {};
    for (const job of jobs.filter((j) => j.key === key)) {
      const done = finished.get(job);
      if (done === undefined) continue;
      // A job with continue-on-error counts as a success for the jobs after it.
      results.push(done.result === Outcome.FAILURE && job.continueOnError ? Outcome.SUCCESS : done.result);
      // Across a matrix the last job to finish wins, and an empty output never overwrites one that
      // is set, so each combination can publish outputs under its own names.
      for (const [name, value] of Object.entries(done.outputs))
        if (value !== "" || !(name in outputs)) outputs[name] = value;
    }
    const result = [Outcome.FAILURE, Outcome.CANCELLED, Outcome.SUCCESS].find((r) => results.includes(r));
    context[key] = { result: RESULT_WORDS[result ?? Outcome.SKIPPED], outputs };
  }
  return context;
}

function decideIf(
  job: PlannedJob,
  needs: NeedsContext,
  options: RunGraphOptions,
): true | { result: Outcome; reason: string } {
  const results = Object.values(needs).map((n) => n.result);
  const status = {
    jobFailed: results.includes("failure") || results.includes("cancelled"),
    cancelled: options.signal.aborted,
    neededSkipped: results.includes("skipped"),
  };
  const contexts = {
    ...options.contexts,
    needs,
    ...(job.matrix ? { matrix: job.matrix } : {}),
    ...(job.strategy ? { strategy: job.strategy } : {}),
  };
  try {
    if (evaluateCondition(job.ifCondition ?? "", contexts, status)) return true;
  } catch (error) {
    if (!(error instanceof ExpressionError)) throw error;
    return { result: Outcome.FAILURE, reason: `its if: cannot be evaluated: ${error.message}` };
  }
  if (job.ifCondition !== undefined && job.ifCondition.trim() !== "") {
    return { result: Outcome.SKIPPED, reason: `if: ${job.ifCondition.trim()} is false` };
  }
  const blocker = Object.entries(needs).find(([, n]) => n.result !== "success");
  return {
    result: Outcome.SKIPPED,
    reason: blocker ? `it needs "${blocker[0]}", which ended ${blocker[1].result}` : "skipped",
  };
}

/** Refuses jobs that need each other in a cycle, naming the jobs in it. */
function checkNoCycle(jobs: readonly PlannedJob[]): void {
  const needsOf = new Map(jobs.map((j) => [j.key, j.needs]));
  const done = new Set<string>();
  const visiting: string[] = [];
  const visit = (key: string) => {
    if (done.has(key)) return;
    const at = visiting.indexOf(key);
    if (at >= 0) {
      throw new WorkflowError(
        "invalid_workflow",
        `jobs need each other in a cycle: ${[...visiting.slice(at), key].join(" → ")}`,
        "remove one of these needs: entries",
      );
    }
    visiting.push(key);
    for (const need of needsOf.get(key) ?? []) if (needsOf.has(need)) visit(need);
    visiting.pop();
    done.add(key);
  };
  for (const key of needsOf.keys()) visit(key);
}
