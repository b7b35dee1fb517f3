import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Outcome } from "@solstice/protocol";
import {
  type NeedsContext,
  type PlannedJob,
  parseWorkflow,
  planAfterNeeds,
  runGraph,
  WorkflowError,
} from "../src/index.ts";

const T = { timeout: 10_000 };

interface Script {
  /** Result per job name; SUCCESS when absent. */
  results?: Record<string, Outcome>;
  outputs?: Record<string, Record<string, string>>;
  delayMs?: number;
  concurrency?: number;
  signal?: AbortSignal;
}

/** Runs `yaml`'s jobs through runGraph with jobs that end as `script` says; records what happened. */
async function run(yaml: string, script: Script = {}) {
  const workflow = parseWorkflow(yaml, { file: "ci.yml", contexts: { github: { event_name: "push" } } });
  const started: string[] = [];
  const needsSeen = new Map<string, NeedsContext>();
  const notRun = new Map<string, { result: Outcome; reason: string }>();
  let live = 0;
  let peak = 0;
  const finished = await runGraph({
    jobs: workflow.jobs,
    contexts: workflow.contexts ?? {},
    concurrency: script.concurrency ?? 10,
    signal: script.signal ?? new AbortController().signal,
    async run(job: PlannedJob, needs, signal) {
      started.push(job.name);
      needsSeen.set(job.name, needs);
      live++;
      peak = Math.max(peak, live);
      try {
        await sleep(script.delayMs ?? 20, undefined, { signal });
      } catch {
        return { result: Outcome.CANCELLED, outputs: {} };
      } finally {
        live--;
      }
      return { result: script.results?.[job.name] ?? Outcome.SUCCESS, outputs: script.outputs?.[job.name] ?? {} };
    },
    notRun(job, result, reason) {
      notRun.set(job.name, { result, reason });
    },
    expand: (job, needs) => planAfterNeeds(workflow, job, needs),
  });
  const resultOf = (name: string) => [...finished].find(([job]) => job.name === name)?.[1].result;
  return { started, needsSeen, notRun, peak, resultOf };
}

describe("runGraph: needs, if:, matrix strategy", () => {
  it(
    "expands a matrix made from its needs' outputs once they finished, and the jobs after it wait for every combination",
    T,
    async () => {
      const r = await run(
        `jobs:
  plan: { runs-on: x, steps: [{ run: "true" }] }
  test:
    needs: plan
    runs-on: \${{ matrix.os }}
    strategy:
      matrix: \${{ fromJSON(needs.plan.outputs.matrix) }}
    steps: [{ run: "echo \${{ matrix.os }}" }]
  report: { runs-on: x, needs: test, steps: [{ run: "true" }] }
  broken:
    needs: plan
    runs-on: x
    strategy: { matrix: { os: "\${{ fromJSON(needs.plan.outputs.missing) }}" } }
    steps: [{ run: "true" }]
`,
        { outputs: { plan: { matrix: '{"os": ["linux", "illumos"], "include": [{"os": "bsd", "extra": 1}]}' } } },
      );
      assert.deepEqual(r.started.slice(0, 1), ["plan"]);
      assert.deepEqual(r.started.slice(1, 4).sort(), ["test (bsd, 1)", "test (illumos)", "test (linux)"]);
      assert.deepEqual(r.started.slice(4), ["report"]);
      assert.equal(r.resultOf("test (illumos)"), Outcome.SUCCESS);
      assert.deepEqual(Object.keys(r.needsSeen.get("report") ?? {}), ["test"]);
      assert.equal(r.notRun.get("broken")?.result, Outcome.FAILURE);
      assert.match(
        r.notRun.get("broken")?.reason ?? "",
        /its matrix cannot be planned: .*ci\.yml:13:32: jobs\.broken\.strategy\.matrix\.os: .*empty input/s,
      );
    },
  );

  it("runs jobs after the jobs they need and passes their results and outputs", T, async () => {
    const r = await run(
      `jobs:
  c: { runs-on: x, needs: [a, b], steps: [{ run: "true" }] }
  a: { runs-on: x, steps: [{ run: "true" }] }
  b: { runs-on: x, needs: a, steps: [{ run: "true" }] }
`,
      { outputs: { a: { v: "1" }, b: { w: "2" } } },
    );
    assert.deepEqual(r.started, ["a", "b", "c"]);
    assert.deepEqual(r.needsSeen.get("c"), {
      a: { result: "success", outputs: { v: "1" } },
      b: { result: "success", outputs: { w: "2" } },
    });
  });

  it("skips a job whose need failed unless its if: asks for failure() or always()", T, async () => {
    const r = await run(
      `jobs:
  build: { runs-on: x, steps: [{ run: "false" }] }
  test: { runs-on: x, needs: build, steps: [{ run: "true" }] }
  report: { runs-on: x, needs: build, if: failure(), steps: [{ run: "true" }] }
  cleanup: { runs-on: x, needs: test, if: always(), steps: [{ run: "true" }] }
  deploy: { runs-on: x, needs: test, steps: [{ run: "true" }] }
`,
      { results: { build: Outcome.FAILURE } },
    );
    assert.deepEqual(r.notRun.get("test"), {
      result: Outcome.SKIPPED,
      reason: 'it needs "build", which ended failure',
    });
    assert.equal(r.notRun.get("deploy")?.result, Outcome.SKIPPED);
    assert.match(r.notRun.get("deploy")?.reason ?? "", /needs "test", which ended skipped/);
    assert.ok(r.started.includes("report"));
    assert.ok(r.started.includes("cleanup"));
    assert.equal(r.needsSeen.get("cleanup")?.test?.result, "skipped");
  });

  it("evaluates a job's if: with github and matrix, and says why it skipped", T, async () => {
    const r = await run(`jobs:
  t:
    runs-on: x
    if: matrix.os == 'a' && github.event_name == 'push'
    strategy: { matrix: { os: [a, b] } }
    steps: [{ run: "true" }]
`);
    assert.deepEqual(r.started, ["t (a)"]);
    assert.equal(r.notRun.get("t (b)")?.reason, "if: matrix.os == 'a' && github.event_name == 'push' is false");
  });

  it("fail-fast cancels the rest of the matrix; without it every job runs", T, async () => {
    const yaml = (failFast: boolean) => `jobs:
  t:
    runs-on: x
    strategy: { fail-fast: ${failFast}, max-parallel: 2, matrix: { n: [1, 2, 3, 4] } }
    steps: [{ run: "true" }]
  after: { runs-on: x, needs: t, if: always(), steps: [{ run: "true" }] }
`;
    const fast = await run(yaml(true), { results: { "t (1)": Outcome.FAILURE }, delayMs: 200 });
    assert.deepEqual(fast.started.slice(0, 2), ["t (1)", "t (2)"]);
    assert.equal(fast.resultOf("t (2)"), Outcome.CANCELLED, "the running sibling is cancelled");
    assert.equal(fast.notRun.get("t (3)")?.result, Outcome.CANCELLED);
    assert.match(fast.notRun.get("t (4)")?.reason ?? "", /fail-fast: t \(1\) failed/);
    assert.equal(fast.needsSeen.get("after")?.t?.result, "failure");

    const slow = await run(yaml(false), { results: { "t (1)": Outcome.FAILURE } });
    assert.deepEqual(slow.started.slice(0, 4).sort(), ["t (1)", "t (2)", "t (3)", "t (4)"]);
    assert.equal(slow.peak, 2, "max-parallel 2");
  });

  it("keeps to the concurrency limit across jobs", T, async () => {
    const r = await run(
      `jobs:
  a: { runs-on: x, strategy: { matrix: { n: [1, 2, 3] } }, steps: [{ run: "true" }] }
  b: { runs-on: x, steps: [{ run: "true" }] }
`,
      { concurrency: 1 },
    );
    assert.equal(r.started.length, 4);
    assert.equal(r.peak, 1);
  });

  it("a continue-on-error job that failed counts as a success for the jobs after it", T, async () => {
    const r = await run(
      `jobs:
  flaky: { runs-on: x, continue-on-error: true, steps: [{ run: "false" }] }
  next: { runs-on: x, needs: flaky, steps: [{ run: "true" }] }
`,
      { results: { flaky: Outcome.FAILURE } },
    );
    assert.equal(r.resultOf("flaky"), Outcome.FAILURE);
    assert.deepEqual(r.started, ["flaky", "next"]);
  });

  it("cancelling the run cancels the running job and every job not started", T, async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("Ctrl-C")), 50);
    const r = await run(
      `jobs:
  a: { runs-on: x, steps: [{ run: "true" }] }
  b: { runs-on: x, needs: a, steps: [{ run: "true" }] }
`,
      { delayMs: 5_000, signal: controller.signal },
    );
    assert.equal(r.resultOf("a"), Outcome.CANCELLED);
    assert.deepEqual(r.notRun.get("b"), { result: Outcome.CANCELLED, reason: "the run was cancelled" });
  });

  it("refuses jobs that need each other in a cycle, naming them", T, async () => {
    await assert.rejects(
      run(`jobs:
  a: { runs-on: x, needs: c, steps: [{ run: "true" }] }
  b: { runs-on: x, needs: a, steps: [{ run: "true" }] }
  c: { runs-on: x, needs: b, steps: [{ run: "true" }] }
`),
      (error: unknown) => error instanceof WorkflowError && /a → c → b → a/.test(error.message),
    );
  });
});
