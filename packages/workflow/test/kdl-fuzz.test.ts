import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseKdlWorkflow, type Workflow, WorkflowValidationError } from "../src/index.ts";

// Bounded and repeatable: a fixed seed, a fixed number of inputs per kind, each of a few hundred
// characters; about 5,000 inputs in a few seconds. Each test asserts how many it ran.
const SEED = 20_261_206;
const TREE_RUNS = 2_000;
const MUTATION_RUNS = 1_500;
const SOUP_RUNS = 1_500;
/** Far above what one input takes; a case beyond it is a hang. */
const MAX_CASE_MS = 2_000;

const SEED_EXAMPLE = readFileSync(new URL("../../../examples/solstice-ci.kdl", import.meta.url), "utf8");
const CONTEXTS = { github: { ref: "refs/heads/main", sha: "abc" } };

/** Plans one input: a Workflow, or a WorkflowValidationError whose problems all point into the file. */
class CaseRunner {
  cases = 0;
  planned = 0;
  rejected = 0;
  slowestMs = 0;

  run(text: string): void {
    this.cases++;
    const start = performance.now();
    let workflow: Workflow | undefined;
    try {
      workflow = parseKdlWorkflow(text, { file: "fuzz.kdl", contexts: CONTEXTS });
    } catch (error) {
      assert.ok(
        error instanceof WorkflowValidationError,
        `untyped error for ${JSON.stringify(text)}: ${error instanceof Error ? error.stack : String(error)}`,
      );
      assert.ok(error.problems.length > 0, "a rejection names at least one problem");
      for (const p of error.problems) {
        assert.equal(p.file, "fuzz.kdl");
        assert.ok(
          Number.isInteger(p.line) && p.line >= 1 && Number.isInteger(p.column) && p.column >= 1,
          `${p.line}:${p.column}`,
        );
      }
      this.rejected++;
    } finally {
      this.slowestMs = Math.max(this.slowestMs, performance.now() - start);
    }
    if (workflow !== undefined) {
      assert.ok(workflow.jobs.length > 0, "a planned workflow has jobs");
      for (const job of workflow.jobs) assert.ok(job.runsOn !== "" && job.steps.length > 0);
      this.planned++;
    }
  }

  finish(t: { diagnostic(message: string): void }, expected: number): void {
    t.diagnostic(
      `${this.cases} cases (${this.planned} planned, ${this.rejected} rejected), slowest ${this.slowestMs.toFixed(1)} ms`,
    );
    assert.ok(this.cases >= expected, `ran ${this.cases} cases, expected at least ${expected}`);
    assert.ok(this.slowestMs < MAX_CASE_MS, `a case took ${this.slowestMs.toFixed(0)} ms`);
  }
}

// Documents made from the schema's words, some misspelt or misplaced, with values of every KDL
// type (and expressions in the strings), so that most inputs get past the syntax into the planner.
const nodeName = fc.constantFrom(
  "workflow",
  "job",
  "step",
  "setup",
  "env",
  "os",
  "runs_on",
  "stpe",
  "jobs",
  "-",
  '"quoted name"',
);
const propName = fc.constantFrom("id", "name", "run", "runs_on", "timeout_minutes", "checkout", "runs-on", "PATH", "x");
const expression = (inner: string) => `\${{ ${inner} }}`;
const stringValue = fc.oneof(
  fc.constantFrom("tiny", "tiny-fast", "build", "", " ", "echo hi"),
  fc
    .constantFrom(
      "github.ref",
      "secrets.T",
      "steps.a.outputs.b",
      "matrix.os",
      "(",
      "",
      "env.X || 'y'",
      "hashFiles('x')",
    )
    .map(expression),
  fc.string({ maxLength: 12 }),
);
const value = fc.oneof(
  stringValue.map((s) => JSON.stringify(s)),
  stringValue.map((s) => `#"${s.replaceAll('"', "")}"#`),
  fc.constantFrom("#true", "#false", "#null", "true", "0", "-1", "1.5e3", "0x10", "#inf", "#nan", "(u8)5", '(date)"x"'),
);
const entry = fc.oneof(
  fc.tuple(propName, value).map(([name, v]) => `${name}=${v}`),
  value,
);
const { tree } = fc.letrec<{ tree: string }>((tie) => ({
  tree: fc
    .tuple(
      nodeName,
      fc.array(entry, { maxLength: 4 }),
      fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.constant(undefined),
        fc.array(tie("tree"), { maxLength: 4 }),
      ),
      fc.constantFrom("\n", ";", " ", "\n/- x\n"),
    )
    .map(
      ([name, entries, children, end]) =>
        [name, ...entries].join(" ") + (children === undefined ? "" : ` {\n${children.join("\n")}\n}`) + end,
    ),
}));
const document = fc.array(tree, { minLength: 0, maxLength: 3 }).map((nodes) => nodes.join("\n"));

/** A job in the schema's shape with odd parts among good ones: many plan, the rest are near-misses. */
const shapedJob = fc
  .tuple(
    fc.constantFrom('id="build"', 'id="b2"', 'id="x y"', ""),
    fc.constantFrom('runs_on="tiny"', `runs_on="${expression("github.ref")}"`, "", 'runs_on="a" runs_on="b"'),
    fc.array(
      fc.constantFrom(
        'runs_on "tiny" "tiny-fast"',
        'os "tiny" { env A="1"; setup run="x"; }',
        "env A=1",
        'step name="s" run="echo $A" { os "tiny-fast" run="y"; }',
        'setup run="s"',
      ),
      { maxLength: 3 },
    ),
    fc.array(tree, { maxLength: 2 }),
  )
  .map(([id, runsOn, parts, odd]) => `job ${id} ${runsOn} {\n${[...parts, ...odd, 'step run="make"'].join("\n")}\n}`);
const shapedDocument = fc.array(shapedJob, { minLength: 1, maxLength: 3 }).map((jobs) => jobs.join("\n"));

/** The seed's example with characters deleted, replaced or inserted: the near-misses a person types. */
const mutation = fc
  .array(
    fc.tuple(
      fc.nat({ max: SEED_EXAMPLE.length }),
      fc.constantFrom("delete", "insert", "replace"),
      fc.constantFrom("{", "}", '"', "=", "#", ";", "\n", "/-", "/*", "\\", "(", ")", "r", "$", " "),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((edits) =>
    edits.reduce((text, [at, kind, piece]) => {
      if (kind === "delete") return text.slice(0, at) + text.slice(at + 1);
      return text.slice(0, at) + piece + text.slice(kind === "insert" ? at : at + 1);
    }, SEED_EXAMPLE),
  );

const soup = fc.oneof(
  fc
    .array(
      fc.constantFrom(
        "{",
        "}",
        '"',
        "=",
        "#",
        ";",
        "\n",
        "/-",
        "/*",
        "*/",
        "//",
        "\\",
        "(",
        ")",
        'r#"',
        '"#',
        "job",
        "step",
        "workflow",
        "run",
        "x",
        " ",
        "\u2028",
        "\uFEFF",
        "#true",
        "0b2",
      ),
      { maxLength: 60 },
    )
    .map((tokens) => tokens.join("")),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "grapheme", maxLength: 100 }),
);

describe("fuzzing the KDL workflow front-end: any input plans or is a typed error", () => {
  it(`plans or reports problems for ${TREE_RUNS} documents made of the schema's words`, (t) => {
    const runner = new CaseRunner();
    fc.assert(
      fc.property(fc.oneof(document, shapedDocument), (text) => runner.run(`workflow {\n${text}\n}`)),
      { numRuns: TREE_RUNS, seed: SEED },
    );
    runner.finish(t, TREE_RUNS);
    assert.ok(runner.planned > 0 && runner.rejected > 0, "the documents both plan and break");
  });

  it(`plans or reports problems for ${MUTATION_RUNS} edits of the seed's example`, (t) => {
    const runner = new CaseRunner();
    fc.assert(
      fc.property(mutation, (text) => runner.run(text)),
      { numRuns: MUTATION_RUNS, seed: SEED },
    );
    runner.finish(t, MUTATION_RUNS);
    assert.ok(runner.planned > 0 && runner.rejected > 0, "edits both keep and break the example");
  });

  it(`reports problems for ${SOUP_RUNS} token soups and arbitrary strings`, (t) => {
    const runner = new CaseRunner();
    fc.assert(
      fc.property(soup, (text) => runner.run(text)),
      { numRuns: SOUP_RUNS, seed: SEED },
    );
    runner.finish(t, SOUP_RUNS);
  });

  it("rejects deep nesting, a file over the size limit and thousands of problems with a typed error", (t) => {
    const runner = new CaseRunner();
    runner.run(`${"a {".repeat(20_000)}${"}".repeat(20_000)}`);
    runner.run(`workflow {\n${'  job id="j" runs_on="tiny" {\n'.repeat(5_000)}`);
    runner.run(`workflow {\n${"  stpe x=1\n".repeat(2_000)}}`);
    runner.run(`// ${"x".repeat(1024 * 1024)}`);
    runner.finish(t, 4);
  });
});
