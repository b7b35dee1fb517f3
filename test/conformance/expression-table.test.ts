import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ExpressionError, evaluateCondition, evaluateExpression } from "@solstice/workflow";

// Sources: DOCS = https://docs.github.com/en/actions/learn-github-actions/expressions (literals,
// operators, loose equality, functions, object filters); RUNNER = the actions/runner expression
// tests (Sdk/Expressions, the L0 tables for format/contains/equality). Each row is a fact stated there.
const CONTEXTS = {
  github: { ref: "refs/heads/main", event_name: "push", event: { commits: [{ m: "a" }, { m: "b" }] } },
  env: { NAME: "world", EMPTY: "" },
  matrix: { os: "linux", node: 20 },
  steps: { build: { outputs: { n: "3" }, outcome: "success" } },
};

const VALUES: Array<[string, unknown, string]> = [
  ["null", null, "DOCS literals"],
  ["false", false, "DOCS literals"],
  ["711", 711, "DOCS literals"],
  ["-9.2", -9.2, "DOCS literals"],
  ["0xff", 255, "DOCS literals (hex)"],
  ["-2.99e-2", -0.0299, "DOCS literals (exponent)"],
  ["'Mona the Octocat'", "Mona the Octocat", "DOCS literals"],
  ["'It''s open source!'", "It's open source!", "DOCS literals (escaped quote)"],
  ["1 == '1'", true, "DOCS loose equality: string coerced to number"],
  ["'' == 0", true, "DOCS: empty string is 0"],
  ["null == 0", true, "DOCS: null is 0"],
  ["true == 1", true, "DOCS: true is 1"],
  ["'abc' == 'ABC'", true, "DOCS: string comparison ignores case"],
  ["'abc' == 1", false, "DOCS: a non-numeric string is NaN"],
  ["!0", true, "DOCS: 0 is falsy"],
  ["!''", true, "DOCS: '' is falsy"],
  ["!'0'", false, "DOCS: a non-empty string is truthy"],
  ["1 && 'x'", "x", "DOCS: && returns the last evaluated operand"],
  ["0 || 'fallback'", "fallback", "DOCS: || returns the first truthy operand"],
  ["2 > 1 && 1 <= 1 && 'b' > 'a'", true, "DOCS comparison operators"],
  ["contains('Hello world', 'llo')", true, "DOCS contains"],
  ["contains(github.event.commits.*.m, 'b')", true, "DOCS contains on an array + object filter"],
  ["startsWith('Hello world', 'he')", true, "DOCS startsWith (case-insensitive)"],
  ["endsWith('Hello world', 'LD')", true, "DOCS endsWith (case-insensitive)"],
  ["format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat", "DOCS format"],
  [
    "format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')",
    "{Hello Mona the Octocat!}",
    "DOCS format with escaped braces",
  ],
  ["join(github.event.commits.*.m, ', ')", "a, b", "DOCS join"],
  ["join('abc')", "abc", "DOCS join of a string"],
  ["toJSON(matrix.node)", "20", "DOCS toJSON"],
  ["fromJSON('{\"a\":[1,true]}').a[1]", true, "DOCS fromJSON"],
  ["fromJSON('3') == 3", true, "DOCS fromJSON of a number"],
  ["github.event.commits[1].m", "b", "DOCS index access"],
  ["github['event_name']", "push", "DOCS property via index"],
  ["GITHUB.REF", "refs/heads/main", "DOCS: contexts and properties are case-insensitive"],
  ["github.nosuch.deeper", null, "DOCS: a missing property is null"],
  ["env.NAME", "world", "DOCS env context"],
  ["steps.build.outputs.n >= 3", true, "DOCS steps context, string output compared as number"],
  ["matrix.os == 'linux' && matrix.node == 20", true, "DOCS matrix context"],
];

const CONDITIONS: Array<[string, { failed: boolean; cancelled: boolean }, boolean, string]> = [
  ["", { failed: false, cancelled: false }, true, "DOCS: no if means success()"],
  ["", { failed: true, cancelled: false }, false, "DOCS: success() is false after a failure"],
  ["github.ref == 'refs/heads/main'", { failed: true, cancelled: false }, false, "DOCS: implicit success() &&"],
  [
    `\${{ github.event_name == 'push' }}`,
    { failed: false, cancelled: false },
    true,
    "DOCS: an if may be wrapped in an expression block",
  ],
  ["failure()", { failed: true, cancelled: false }, true, "DOCS failure()"],
  ["always()", { failed: true, cancelled: true }, true, "DOCS always()"],
  ["cancelled()", { failed: false, cancelled: true }, true, "DOCS cancelled()"],
  ["!cancelled()", { failed: true, cancelled: false }, true, "DOCS: status function present, no implicit success()"],
  [
    "failure() && steps.build.outcome == 'success'",
    { failed: true, cancelled: false },
    true,
    "DOCS steps outcome in if",
  ],
];

const ERRORS: Array<[string, number, RegExp, string]> = [
  ["github.ref ==", 12, /Unexpected end of expression/, "DOCS grammar"],
  ["nosuch.x", 1, /unknown context: 'nosuch'/, "DOCS: only the listed contexts exist"],
  ["frob(1)", 1, /unknown function: 'frob'/, "DOCS: only the listed functions exist"],
  ["contains('a')", 1, /Too few parameters/, "DOCS: contains takes two arguments"],
  ['"double"', 1, /Unexpected symbol/, "DOCS: strings use single quotes"],
];

describe("conformance: the expression language, as documented", () => {
  it("evaluates each documented example to its documented value", () => {
    for (const [expression, expected, source] of VALUES) {
      assert.deepEqual(evaluateExpression(expression, CONTEXTS), expected, `${expression} (${source})`);
    }
  });

  it("decides each documented condition with the implicit success() &&", () => {
    for (const [text, status, expected, source] of CONDITIONS) {
      const decided = evaluateCondition(text, CONTEXTS, { jobFailed: status.failed, cancelled: status.cancelled });
      assert.equal(decided, expected, `${text} (${source})`);
    }
  });

  it("rejects each invalid expression with a typed error naming the expression, column and reason", () => {
    for (const [expression, column, reason, source] of ERRORS) {
      assert.throws(
        () => evaluateExpression(expression, CONTEXTS),
        (e: unknown) =>
          e instanceof ExpressionError &&
          e.column === column &&
          reason.test(e.message) &&
          e.message.includes(expression),
        `${expression} (${source})`,
      );
    }
  });
});
