import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JobSource } from "@solstice/protocol";
import { expandMatrix, matrixJobName, parseWorkflow, planAfterNeeds, toJobRequest } from "../src/index.ts";
import { only, problemsOf } from "./rejected-workflow.ts";

const T = { timeout: 5_000 };

describe("matrix expansion", () => {
  // Source: docs.github.com "Running variations of jobs in a workflow" → "Expanding or adding
  // matrix configurations": the fruit/animal example and the six combinations it lists.
  it("merges include entries as GitHub's documented example shows", T, () => {
    const combinations = expandMatrix({
      dimensions: [
        ["fruit", ["apple", "pear"]],
        ["animal", ["cat", "dog"]],
      ],
      include: [
        { color: "green" },
        { color: "pink", animal: "cat" },
        { fruit: "apple", shape: "circle" },
        { fruit: "banana" },
        { fruit: "banana", animal: "cat" },
      ],
      exclude: [],
    });
    assert.deepEqual(combinations, [
      { fruit: "apple", animal: "cat", color: "pink", shape: "circle" },
      { fruit: "apple", animal: "dog", color: "green", shape: "circle" },
      { fruit: "pear", animal: "cat", color: "pink" },
      { fruit: "pear", animal: "dog", color: "green" },
      { fruit: "banana" },
      { fruit: "banana", animal: "cat" },
    ]);
  });

  // Source: the same page, "Excluding matrix configurations": os × version × environment with
  // two partial excludes leaves 12 − 2 − 2... (the page's example: 3×2×2 − excluded = 8 jobs).
  it("removes every combination an exclude entry matches on all of its keys", T, () => {
    const combinations = expandMatrix({
      dimensions: [
        ["os", ["macos-latest", "windows-latest"]],
        ["version", [12, 14, 16]],
        ["environment", ["staging", "production"]],
      ],
      include: [],
      exclude: [
        { os: "macos-latest", version: 12, environment: "production" },
        { os: "windows-latest", version: 16 },
      ],
    });
    assert.equal(combinations.length, 12 - 1 - 2);
    assert.ok(!combinations.some((c) => c.os === "windows-latest" && c.version === 16));
    assert.deepEqual(combinations[0], { os: "macos-latest", version: 12, environment: "staging" });
  });

  it("makes one job per include entry when the matrix has no keys of its own", T, () => {
    const combinations = expandMatrix({
      dimensions: [],
      include: [
        { site: "production", datacenter: "site-a" },
        { site: "staging", datacenter: "site-b" },
      ],
      exclude: [],
    });
    assert.equal(combinations.length, 2);
  });

  it("plans one job per combination with matrix and strategy contexts and GitHub's default names", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  test:
    runs-on: \${{ matrix.os }}
    continue-on-error: \${{ matrix.experimental }}
    strategy:
      max-parallel: 2
      matrix:
        os: [tiny, debian-12]
        node: \${{ fromJSON('[18, 20]') }}
        experimental: [false]
        include:
          - os: tiny
            node: 21
            experimental: true
    env:
      NODE: \${{ matrix.node }}
    steps:
      - run: echo \${{ matrix.os }} \${{ strategy.job-index }}/\${{ strategy.job-total }}
`,
      { file: "ci.yml" },
    );
    assert.deepEqual(
      workflow.jobs.map((j) => [j.key, j.name, j.runsOn, j.env.NODE, j.continueOnError]),
      [
        ["test", "test (tiny, 18, false)", "tiny", "18", false],
        ["test", "test (tiny, 20, false)", "tiny", "20", false],
        ["test", "test (debian-12, 18, false)", "debian-12", "18", false],
        ["test", "test (debian-12, 20, false)", "debian-12", "20", false],
        ["test", "test (tiny, 21, true)", "tiny", "21", true],
      ],
    );
    const last = workflow.jobs[4];
    assert.deepEqual(last?.strategy, { "fail-fast": true, "job-index": 4, "job-total": 5, "max-parallel": 2 });
    assert.equal(last?.steps[0]?.kind === "run" && last.steps[0].script, "echo tiny 4/5");
  });

  it("keeps a name that already uses the matrix", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  t:
    name: Node \${{ matrix.node }}
    runs-on: tiny
    strategy: { matrix: { node: [18] } }
    steps: [{ run: "true" }]
`,
      { file: "ci.yml" },
    );
    assert.equal(workflow.jobs[0]?.name, "Node 18");
    assert.equal(matrixJobName("build (linux, 20)", { os: "linux", node: 20 }), "build (linux, 20)");
    assert.equal(matrixJobName("build", { os: "linux", node: 20 }), "build (linux, 20)");
  });

  it("plans a matrix made from needs' outputs as a place in the graph, to be planned once they finished", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  setup: { runs-on: tiny, steps: [{ run: "true" }] }
  t:
    needs: setup
    if: github.event_name == 'push'
    runs-on: \${{ matrix.os }}
    strategy:
      matrix:
        os: \${{ fromJSON(needs.setup.outputs.versions) }}
    steps: [{ run: "true" }]
`,
      { file: "ci.yml" },
    );
    const waiting = workflow.jobs[1];
    assert.ok(waiting?.matrixFromNeeds);
    assert.deepEqual(
      [waiting.key, waiting.needs, waiting.ifCondition, waiting.steps],
      ["t", ["setup"], "github.event_name == 'push'", []],
    );
    assert.throws(
      () =>
        toJobRequest(workflow, waiting, {
          source: JobSource.MANUAL,
          owner: "o",
          repository: { url: "", fullName: "o/r", commitSha: "", ref: "" },
        }),
      /matrix made from its needs' outputs: it is planned when they finished/,
    );
    const planned = planAfterNeeds(workflow, waiting, {
      setup: { result: "success", outputs: { versions: '["linux", "illumos"]' } },
    });
    assert.deepEqual(
      planned.map((job) => [job.name, job.runsOn, job.strategy?.["job-total"]]),
      [
        ["t (linux)", "linux", 2],
        ["t (illumos)", "illumos", 2],
      ],
    );
  });

  it("reports a matrix it cannot expand, once, with its position", T, () => {
    const empty = only(
      problemsOf(`jobs:
  t:
    runs-on: tiny
    strategy:
      matrix:
        os: [a]
        exclude: [{ os: a }]
    steps: [{ run: "true" }]
`),
    );
    assert.match(empty.message, /every combination is excluded/);

    const tooMany = only(
      problemsOf(`jobs:
  t:
    runs-on: tiny
    strategy:
      matrix:
        a: [${Array.from({ length: 17 }, (_, i) => i).join(",")}]
        b: [${Array.from({ length: 16 }, (_, i) => i).join(",")}]
    steps: [{ run: "true" }]
`),
    );
    assert.match(tooMany.message, /makes 272 jobs; a matrix may make at most 256/);
  });

  it("leaves needs for when the job starts, and reports a duplicated mistake once per file", T, () => {
    const workflow = parseWorkflow(
      `jobs:
  a:
    runs-on: tiny
    outputs:
      v: \${{ steps.s.outputs.v }}
    steps:
      - id: s
        run: echo v=1 >> $GITHUB_OUTPUT
  b:
    needs: a
    runs-on: tiny
    env:
      FROM_A: \${{ needs.a.outputs.v }}
    steps:
      - run: echo \${{ needs.a.outputs.v }}
`,
      { file: "ci.yml" },
    );
    const b = workflow.jobs[1];
    const asWritten = `\${{ needs.a.outputs.v }}`;
    assert.equal(b?.env.FROM_A, asWritten);
    assert.equal(b?.steps[0]?.kind === "run" && b.steps[0].script, `echo ${asWritten}`);

    const problem = only(
      problemsOf(`jobs:
  t:
    runs-on: tiny
    strategy: { matrix: { n: [1, 2, 3] } }
    steps: [{ run: "true", shell: fish }]
`),
    );
    assert.equal(problem.key, "jobs.t.steps[0].shell");
  });
});
