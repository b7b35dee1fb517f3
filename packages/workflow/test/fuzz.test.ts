import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import {
  CONTEXT_NAMES,
  ExpressionError,
  evaluateCondition,
  evaluateExpression,
  interpolateText,
  parseWorkflow,
  WorkflowError,
} from "../src/index.ts";

// Bounded runs: about ten thousand inputs in well under the suite's budget for this package. Each
// test states how many it ran (as a diagnostic, and by asserting the count).
const EXPRESSION_RUNS = 3_000;
const TOKEN_RUNS = 2_000;
const WORKFLOW_RUNS = 1_500;
const YAML_RUNS = 1_500;
/** Far above what one input of a few hundred characters takes; a case beyond it is a hang. */
const MAX_CASE_MS = 2_000;

const CONTEXTS = {
  github: { ref: "refs/heads/main", list: [1, "a", { b: null }], event: { commits: [{ m: "x" }] } },
  env: { A: "1" },
  steps: { s: { outputs: { o: "v" }, outcome: "success" } },
  matrix: { os: "linux" },
};

const FUNCTIONS = [
  "contains",
  "startsWith",
  "endsWith",
  "format",
  "join",
  "toJSON",
  "fromJSON",
  "hashFiles",
  "case",
  "success",
  "always",
  "cancelled",
  "failure",
  "frob",
];

/** Runs one case: it may succeed or throw our typed errors, nothing else, and must end quickly. */
class CaseRunner {
  cases = 0;
  slowestMs = 0;

  run(body: () => unknown): void {
    this.cases++;
    const start = performance.now();
    try {
      body();
    } catch (error) {
      assert.ok(
        error instanceof ExpressionError || error instanceof WorkflowError,
        `untyped error: ${error instanceof Error ? error.stack : String(error)}`,
      );
    } finally {
      this.slowestMs = Math.max(this.slowestMs, performance.now() - start);
    }
  }

  /** Reports and checks how many cases ran and the slowest. */
  finish(t: { diagnostic(message: string): void }, expected: number): void {
    t.diagnostic(`${this.cases} cases, slowest ${this.slowestMs.toFixed(1)} ms`);
    assert.ok(this.cases >= expected, `ran ${this.cases} cases, expected at least ${expected}`);
    assert.ok(this.slowestMs < MAX_CASE_MS, `a case took ${this.slowestMs.toFixed(0)} ms`);
  }
}

// Expressions from the grammar (literals, contexts, property/index/* access, calls, operators),
// well-formed or nearly so: a node may be a stray token instead.
const literal = fc.oneof(
  fc.constantFrom("null", "true", "false", "NaN", "Infinity", "-0", "0x1F", "1e3", ".5", "0o7"),
  fc.integer().map(String),
  fc.double({ noDefaultInfinity: true, noNaN: true }).map(String),
  fc.string({ maxLength: 12 }).map((s) => `'${s.replaceAll("'", "''")}'`),
  fc.json({ maxDepth: 2 }).map((j) => `'${j.replaceAll("'", "''")}'`),
);
const name = fc.oneof(
  fc.constantFrom("ref", "list", "event", "s", "outputs", "*"),
  fc.stringMatching(/^[a-z_][a-z0-9_-]{0,6}$/),
);
const { expression } = fc.letrec<{ expression: string }>((tie) => ({
  expression: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    literal,
    fc
      .tuple(fc.constantFrom(...CONTEXT_NAMES, "nosuch"), fc.array(name, { maxLength: 4 }))
      .map(([context, path]) => [context, ...path].join(".")),
    fc.tuple(tie("expression"), tie("expression")).map(([target, index]) => `${target}[${index}]`),
    fc
      .tuple(fc.constantFrom(...FUNCTIONS), fc.array(tie("expression"), { maxLength: 4 }))
      .map(([fn, args]) => `${fn}(${args.join(", ")})`),
    tie("expression").map((e) => `!${e}`),
    tie("expression").map((e) => `(${e})`),
    fc
      .tuple(tie("expression"), fc.constantFrom("==", "!=", "<", "<=", ">", ">=", "&&", "||"), tie("expression"))
      .map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.constantFrom("(", ")", "[", "]", ",", ".", "'", "}}", "${{", "==", "!", "*"),
  ),
}));

const TOKENS = [
  "github",
  ".",
  "ref",
  "[",
  "]",
  "(",
  ")",
  "*",
  "!",
  "==",
  "!=",
  "<",
  "&&",
  "||",
  ",",
  "'a'",
  "''",
  "1",
  "0x1f",
  "null",
  "true",
  "contains",
  "format",
  "fromJSON",
  "success",
  "steps",
  "'{0}'",
  "join",
  " ",
];
const tokenSoup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((t) => t.join(""));
const anything = fc.oneof(expression, tokenSoup, fc.string({ maxLength: 200 }));

// YAML-ish workflows: a tree of workflow-like keys and values, written as YAML, then maybe cut
// and spliced with YAML's own syntax characters (anchors, aliases, tags, flow collections, tabs).
const KEYS = [
  "on",
  "name",
  "env",
  "jobs",
  "build",
  "runs-on",
  "steps",
  "run",
  "uses",
  "with",
  "if",
  "needs",
  "strategy",
  "matrix",
  "include",
  "exclude",
  "defaults",
  "shell",
  "timeout-minutes",
  "continue-on-error",
  "outputs",
  "services",
  "<<",
];
const scalar = fc.oneof(
  fc.string({ maxLength: 20 }),
  anything.map((e) => `\${{ ${e} }}`),
  fc.integer({ min: -5, max: 400 }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom("actions/checkout@v4", "actions/setup-node@v4", "bash", "tiny", "ubuntu-24.04"),
);
const { node } = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small" },
    scalar,
    fc.array(tie("node"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 8 })), tie("node"), { maxKeys: 5 }),
  ),
}));
const SPLICES = [
  "&a ",
  "*a",
  "!tag ",
  "!!str ",
  "\t",
  "\n",
  ": ",
  "- ",
  "{",
  "}",
  "[",
  "]",
  "'",
  '"',
  "|",
  ">",
  "#",
  "<<: *a\n",
  "? ",
];
// A free tree, or a valid skeleton (a job with runs-on and a run: step) with arbitrary parts in it.
const tree = fc.oneof(
  fc.dictionary(fc.constantFrom(...KEYS), node, { minKeys: 1, maxKeys: 5 }),
  fc
    .tuple(
      fc.dictionary(fc.constantFrom(...KEYS), node, { maxKeys: 2 }),
      fc.dictionary(fc.constantFrom(...KEYS), node, { maxKeys: 2 }),
      fc.array(node, { maxLength: 2 }),
    )
    .map(([job, step, steps]) => ({
      jobs: { j: { "runs-on": "tiny", ...job, steps: [{ run: "echo", ...step }, ...steps] } },
    })),
);
const yamlish = fc
  .tuple(
    tree,
    // Half of the documents stay valid YAML.
    fc.oneof(
      fc.constant([]),
      fc.array(fc.tuple(fc.nat(), fc.nat({ max: 3 }), fc.constantFrom(...SPLICES)), { minLength: 1, maxLength: 3 }),
    ),
  )
  .map(([tree, splices]) => {
    let text = stringify(tree);
    for (const [at, cut, insert] of splices) {
      const i = at % (text.length + 1);
      text = text.slice(0, i) + insert + text.slice(i + cut);
    }
    return text;
  });

/** Aliases that multiply (each level refers to the one below twice), used where `use` says. */
function aliasLadder(levels: number, use: (top: string) => string): string {
  const lines = ["x0: &x0 [a, b]"];
  for (let i = 1; i <= levels; i++) lines.push(`x${i}: &x${i} [*x${i - 1}, *x${i - 1}]`);
  return `${lines.join("\n")}\n${use(`*x${levels}`)}`;
}

const LADDER_USES: Record<string, (top: string) => string> = {
  on: (top) => `on: ${top}\njobs:\n  j:\n    runs-on: tiny\n    steps:\n      - run: echo\n`,
  env: (top) => `jobs:\n  j:\n    runs-on: tiny\n    env: ${top}\n    steps:\n      - run: echo\n`,
  steps: (top) => `jobs:\n  j:\n    runs-on: tiny\n    steps: ${top}\n`,
  matrix: (top) =>
    `jobs:\n  j:\n    runs-on: tiny\n    strategy:\n      matrix:\n        os: ${top}\n    steps:\n      - run: echo\n`,
};

describe("fuzzing the expression parser, evaluator and workflow parser", () => {
  it(`evaluates or throws our typed error for ${EXPRESSION_RUNS} grammar-made expressions`, (t) => {
    const runner = new CaseRunner();
    fc.assert(
      fc.property(expression, (text) => {
        runner.run(() => evaluateExpression(text, CONTEXTS));
        runner.run(() => evaluateCondition(text, CONTEXTS, { jobFailed: true, cancelled: false }));
        runner.run(() => interpolateText(`a \${{ ${text} }} b`, CONTEXTS));
      }),
      { numRuns: EXPRESSION_RUNS },
    );
    runner.finish(t, EXPRESSION_RUNS * 3);
  });

  it(`evaluates or throws our typed error for ${TOKEN_RUNS} token soups and arbitrary strings`, (t) => {
    const runner = new CaseRunner();
    fc.assert(
      fc.property(fc.oneof(tokenSoup, fc.string({ maxLength: 200 })), (text) => {
        runner.run(() => evaluateExpression(text, CONTEXTS));
        runner.run(() => evaluateCondition(text, CONTEXTS, { jobFailed: false, cancelled: false }));
        runner.run(() => interpolateText(text, CONTEXTS));
      }),
      { numRuns: TOKEN_RUNS },
    );
    runner.finish(t, TOKEN_RUNS * 3);
  });

  it(`plans or reports problems for ${WORKFLOW_RUNS} workflows with arbitrary expressions in every field`, (t) => {
    const runner = new CaseRunner();
    const workflow = fc
      .tuple(anything, anything, anything, anything, anything)
      .map(
        ([a, b, c, d, e]) =>
          `name: \${{ ${e} }}\njobs:\n  j:\n    runs-on: \${{ ${d} }}\n    if: ${JSON.stringify(b)}\n    steps:\n      - run: echo \${{ ${a} }}\n        if: ${JSON.stringify(b)}\n        env:\n          X: ${JSON.stringify(c)}\n      - uses: actions/checkout@v4\n        with:\n          ref: \${{ ${c} }}\n`,
      );
    fc.assert(
      fc.property(workflow, (text) => {
        runner.run(() => parseWorkflow(text, { file: "fuzz.yml", contexts: { github: CONTEXTS.github } }));
      }),
      { numRuns: WORKFLOW_RUNS },
    );
    runner.finish(t, WORKFLOW_RUNS);
  });

  it(`plans or reports problems for ${YAML_RUNS} YAML-ish documents`, (t) => {
    const runner = new CaseRunner();
    fc.assert(
      fc.property(fc.oneof(yamlish, fc.string({ maxLength: 300 })), (text) => {
        runner.run(() => parseWorkflow(text, { file: "fuzz.yml", contexts: { github: CONTEXTS.github } }));
      }),
      { numRuns: YAML_RUNS },
    );
    runner.finish(t, YAML_RUNS);
  });

  it("rejects deep nesting and multiplying aliases with a typed error instead of overflowing or hanging", (t) => {
    const runner = new CaseRunner();
    assert.throws(() => evaluateExpression(`${"(".repeat(5_000)}1${")".repeat(5_000)}`, {}), ExpressionError);
    assert.throws(() => evaluateExpression("!".repeat(100_000), {}), ExpressionError);
    runner.run(() => parseWorkflow(`${"[".repeat(10_000)}${"]".repeat(10_000)}`, { file: "deep.yml" }));
    for (const [where, use] of Object.entries(LADDER_USES)) {
      // 2^40 values if walked in full.
      runner.run(() => parseWorkflow(aliasLadder(40, use), { file: `aliases-in-${where}.yml` }));
    }
    assert.throws(
      () => parseWorkflow(aliasLadder(40, LADDER_USES.matrix as (top: string) => string), { file: "a.yml" }),
      (e: unknown) => e instanceof WorkflowError && /YAML aliases are used more than \d+ times/.test(e.message),
    );
    runner.finish(t, 1 + Object.keys(LADDER_USES).length);
  });
});
