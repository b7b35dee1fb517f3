import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ContextValues, ExpressionError, evaluateCondition, evaluateExpression } from "@solstice/workflow";

// Each row is a fact stated by one of these sources (input → value or error), recorded with it:
const DOCS = "docs.github.com/en/actions/reference/workflows-and-actions/expressions";
/** GitHub's own cross-implementation tables, as run by @actions/expressions' xlang test. */
const LS = (file: string) => `actions/languageservices expressions/testdata/${file}`;
const ACT = "nektos/act pkg/exprparser/interpreter_test.go";
const ACT_FUNCTIONS = "nektos/act pkg/exprparser/functions_test.go";
const RUNNER_CONDITIONS = "actions/runner src/Test/L0/Worker/Expressions/ConditionFunctionsL0.cs";
const RUNNER_PARSER = "actions/runner src/Test/L0/Sdk/ExpressionParserL0.cs";
/** The runner writes numbers into text with .NET's "G15" format (EvaluationResult.ConvertToString). */
const RUNNER_G15 = "actions/runner src/Sdk/DTExpressions2/Expressions2/EvaluationResult.cs (G15)";
// The languageservices tables name their contexts freely (foo, test, myArray…); Solstice knows only
// the Actions contexts, so such a context is given here as `vars` (and a second one as `inputs`),
// with the expression renamed to match (and long values shortened). Rows where act differs from GitHub's
// own implementation (e.g. fromJSON('[0,1]')[1.1], indexing a grouped filter, C#-style formatting of
// 1.2e19) are left out.

const CONTEXTS = {
  github: { ref: "refs/heads/main", event_name: "push", event: { commits: [{ m: "a" }, { m: "b" }] } },
  env: { NAME: "world", EMPTY: "" },
  matrix: { os: "linux", node: 20 },
  steps: { build: { outputs: { n: "3" }, outcome: "success" } },
};

// act's TestContexts environment.
const ACT_CONTEXTS = {
  github: {
    action: "push",
    event: { commits: [{ author: { username: "someone" } }, { author: { username: "someone-else" } }] },
  },
  env: { TEST: "value" },
  steps: {
    "step-id": { outputs: { name: "value" }, outcome: "success", conclusion: "success" },
    "step-id2": { outcome: "failure", conclusion: "skipped" },
  },
  strategy: { "fail-fast": true },
  needs: { "job-id": { outputs: { "output-name": "value" }, result: "success" } },
};

const ARRAY_3 = { vars: ["zero", "one", "two"] };
const ITEMS = { vars: ["_ITEM-1_", "_ITEM-2_", "_ITEM-3_"] };

/** [expression, expected value, source, contexts (CONTEXTS when left out)] */
type ValueRow = [string, unknown, string, ContextValues?];

const VALUES: ValueRow[] = [
  // Literals
  ["null", null, `${DOCS} (literals)`],
  ["false", false, `${DOCS} (literals)`],
  ["711", 711, `${DOCS} (literals)`],
  ["-9.2", -9.2, `${DOCS} (literals)`],
  ["0xff", 255, `${DOCS} (literals, hex)`],
  ["-2.99e-2", -0.0299, `${DOCS} (literals, exponent)`],
  ["'Mona the Octocat'", "Mona the Octocat", `${DOCS} (literals)`],
  ["'It''s open source!'", "It's open source!", `${DOCS} (literals, escaped quote)`],
  ["'it''s foo'", "it's foo", ACT],
  ["", null, LS("basic.json")],
  ["+1", 1, LS("number.json")],
  [".5", 0.5, LS("number.json")],
  ["-.5", -0.5, LS("number.json")],
  ["1E+1", 10, LS("number.json")],
  ["1e-1", 0.1, LS("number.json")],
  ["0xfFf", 4095, LS("number.json")],
  ["0o777", 511, LS("number.json")],
  ["Infinity", Number.POSITIVE_INFINITY, LS("op_eq.json")],
  ["-Infinity", Number.NEGATIVE_INFINITY, LS("op_eq.json")],
  ["NaN", Number.NaN, ACT],

  // Loose equality and comparisons of mixed types
  ["1 == '1'", true, `${DOCS}: a string is coerced to a number`],
  ["'' == 0", true, `${DOCS}: an empty string is 0`],
  ["null == 0", true, `${DOCS}: null is 0`],
  ["true == 1", true, `${DOCS}: true is 1`],
  ["'abc' == 'ABC'", true, `${DOCS}: string comparison ignores case`],
  ["'abc' == 1", false, `${DOCS}: a non-numeric string is NaN`],
  ["2 > 1 && 1 <= 1 && 'b' > 'a'", true, `${DOCS} (comparison operators)`],
  ["0 == -0", true, LS("op_eq.json")],
  ["120 == 1.2e2", true, LS("op_eq.json")],
  ["1.001 == 1.002", false, LS("op_eq.json")],
  ["Infinity == ' Infinity '", true, LS("op_eq.json")],
  ["false == null", true, LS("op_eq.json")],
  ["true == null", false, LS("op_eq.json")],
  ["'' == false", true, LS("op_eq.json")],
  ["'   ' == null", true, LS("op_eq.json")],
  ["'0' == null", true, LS("op_eq.json")],
  ["'false' == null", false, LS("op_eq.json")],
  ["'null' == null", false, LS("op_eq.json")],
  ["'2' == true", false, LS("op_eq.json")],
  ["2 == true", false, LS("op_eq.json")],
  ["'null' == vars", false, LS("op_eq.json"), { vars: {} }],
  ["null == vars", false, LS("op_eq.json"), { vars: [] }],
  ["'3' == 3", true, ACT],
  ["'TEST' == 'test'", true, ACT],
  ["null != 1", true, LS("op_ne.json")],
  ["'1' != null", true, LS("op_ne.json")],
  ["null != '   '", false, LS("op_ne.json")],
  ["'null' != vars", true, LS("op_ne.json"), { vars: {} }],
  ["false < true", true, LS("op_lt.json")],
  ["'abc' < 'def'", true, LS("op_lt.json")],
  ["vars < vars", false, LS("op_lt.json"), { vars: [] }],
  ["-1 < null", true, LS("op_lt.json")],
  ["'-1' < null", true, LS("op_lt.json")],
  ["null < ' 1 '", true, LS("op_lt.json")],
  ["null < vars", false, LS("op_lt.json"), { vars: {} }],
  ["-Infinity < false", true, LS("op_lt.json")],
  ["'def' > 'abc'", true, LS("op_gt.json")],
  ["true > null", true, LS("op_gt.json")],
  ["'1' > null", true, LS("op_gt.json")],
  ["null > ' -1 '", true, LS("op_gt.json")],
  ["vars > vars", false, LS("op_gt.json"), { vars: {} }],
  ["true > false", true, ACT],
  ["true >= true", true, ACT],
  ["fromJSON('{}') < 2", false, ACT],
  ["fromJSON('{}') > fromJSON('[]')", false, ACT],

  // NaN: never equal, never ordered, falsy
  ["NaN == NaN", false, LS("op_eq.json")],
  ["NaN != NaN", true, LS("op_ne.json")],
  ["0 != NaN", true, LS("op_ne.json")],
  ["false == NaN", false, LS("op_eq.json")],
  ["NaN == false", false, LS("op_eq.json")],
  ["NaN == 'NaN'", false, LS("op_eq.json")],
  ["false < NaN", false, LS("op_lt.json")],
  ["NaN < true", false, LS("op_lt.json")],
  ["true > NaN", false, LS("op_gt.json")],
  ["!!NaN", false, LS("op_not.json")],
  ["NaN && true", Number.NaN, ACT],
  ["true && NaN", Number.NaN, ACT],
  ["NaN || 'abc'", "abc", ACT],
  ["NaN || NaN", Number.NaN, ACT],
  ["format('{0}', NaN)", "NaN", LS("coerce_string.json")],

  // Truthiness and the operands && and || return
  ["!0", true, `${DOCS}: 0 is falsy`],
  ["!''", true, `${DOCS}: '' is falsy`],
  ["!'0'", false, `${DOCS}: a non-empty string is truthy`],
  ["1 && 'x'", "x", `${DOCS}: && returns the last evaluated operand`],
  ["0 || 'fallback'", "fallback", `${DOCS}: || returns the first truthy operand`],
  ["!!-0", false, LS("op_not.json")],
  ["!!'false'", true, LS("op_not.json")],
  ["!!fromJson('[]')", true, LS("op_not.json")],
  ["!!fromJson('{}')", true, LS("op_not.json")],
  ["!!null", false, LS("op_not.json")],
  ["false || null", null, LS("op_or.json")],
  ["true && 0 && 2", 0, LS("op_and.json")],
  ["null && true", null, ACT],
  ["'' && 'abc'", "", ACT],
  ["'' || 'abc'", "abc", ACT],
  ["-10 || true", -10, ACT],
  ["0 && 'abc'", 0, ACT],
  ["Infinity || 0", Number.POSITIVE_INFINITY, ACT],
  ["0.0 && true", 0, ACT],
  ["-1.5 && true", true, ACT],
  ["fromJSON('{}') || false", {}, ACT],
  ["(false || (false || true))", true, ACT],

  // Property access: dots, case-insensitive names, names that look like other tokens
  ["GITHUB.REF", "refs/heads/main", `${DOCS}: contexts and properties are case-insensitive`],
  ["github.nosuch.deeper", null, `${DOCS}: a missing property is null`],
  ["github['event_name']", "push", `${DOCS}: a property by index`],
  ["VARS.TEst", 123, LS("basic.json"), { vars: { teST: 123 } }],
  ["vars.bar", "baz", LS("op_dot.json"), { vars: { BAR: "baz" } }],
  ["vars.BAR", "baz", LS("op_dot.json"), { vars: { bar: "baz" } }],
  ["vars.b-ar", "baz", LS("op_dot.json"), { vars: { "b-ar": "baz" } }],
  ["vars._bar", "baz", LS("op_dot.json"), { vars: { _bar: "baz" } }],
  ["vars.true", "it's true", LS("op_dot.json"), { vars: { true: "it's true" } }],
  ['fromJson(\'{"one": "one val"}\').one', "one val", LS("op_dot.json")],
  ['(fromJson(\'{"one": "one val"}\')).one', "one val", LS("op_dot.json")],
  ["github.action", "push", ACT, ACT_CONTEXTS],
  ["github['action']", "push", ACT, ACT_CONTEXTS],
  ["steps.step-id.outputs.name", "value", ACT, ACT_CONTEXTS],
  ["steps['step-id']['outcome'] && true", true, ACT, ACT_CONTEXTS],
  ["steps.step-id2.conclusion", "skipped", ACT, ACT_CONTEXTS],
  ["strategy.fail-fast", true, ACT, ACT_CONTEXTS],
  ["needs.job-id.outputs.output-name", "value", ACT, ACT_CONTEXTS],
  ["env.TEST", "value", ACT, ACT_CONTEXTS],
  ["github.event.commits[0].author.username != github.event.commits[1].author.username", true, ACT, ACT_CONTEXTS],

  // Index access with numbers and strings
  ["github.event.commits[1].m", "b", `${DOCS} (index access)`],
  ["vars[true]", "one", LS("op_idx.json"), ARRAY_3],
  ["vars[null]", "zero", LS("op_idx.json"), ARRAY_3],
  ["vars[' 0.0 ']", "zero", LS("op_idx.json"), ARRAY_3],
  ["vars[' 0x02 ']", "two", LS("op_idx.json"), ARRAY_3],
  ["vars[' asdf ']", null, LS("op_idx.json"), ARRAY_3],
  ["vars[-1]", null, LS("op_idx.json"), ARRAY_3],
  ["vars[3]", null, LS("op_idx.json"), ARRAY_3],
  ["vars[NaN]", null, LS("op_idx.json"), ARRAY_3],
  ["vars[Infinity]", null, LS("op_idx.json"), ARRAY_3],
  ["vars[fromjson('[]')]", null, LS("op_idx.json"), ARRAY_3],
  ["vars['bAr']", "baz", LS("op_idx.json"), { vars: { BaR: "baz" } }],
  ["vars[5]", "it's 5", LS("op_idx.json"), { vars: { "5": "it's 5" } }],
  ["vars[-.5]", "it's -0.5", LS("op_idx.json"), { vars: { "-0.5": "it's -0.5" } }],
  ["vars[0x0f]", "it's 15", LS("op_idx.json"), { vars: { "15": "it's 15" } }],
  ["vars[NaN]", "it's NaN", LS("op_idx.json"), { vars: { NaN: "it's NaN" } }],
  ["vars[null]", "it's null", LS("op_idx.json"), { vars: { "": "it's null" } }],
  ["vars[false]", "it's false", LS("op_idx.json"), { vars: { false: "it's false" } }],
  ["vars[fromJson('{}')]", null, LS("op_idx.json"), { vars: { Object: "It's Object" } }],
  ["vars[format('{0}', fromJson('[]'))]", "It's Array", LS("op_idx.json"), { vars: { Array: "It's Array" } }],
  ["vars['asdf']", null, LS("op_idx.json"), { vars: { bar: "baz" } }],
  ['fromJson(\'["one", "two"]\')[1]', "two", LS("op_idx.json")],
  ['(fromJson(\'["one", "two"]\'))[1]', "two", LS("op_idx.json")],
  ["fromJSON('[0,1]')[1]", 1, ACT],
  ["fromJSON('[0,1]')[2]", null, ACT],
  ["fromJSON('[0,1]')[-34553]", null, ACT],
  ["github.action[0]", null, ACT, ACT_CONTEXTS],

  // The * filter on objects and arrays
  ["contains(github.event.commits.*.m, 'b')", true, `${DOCS} (object filters)`],
  ["vars.*", [], LS("op_idx_star.json"), { vars: null }],
  ["vars.*", [], LS("op_idx_star.json"), { vars: "abc" }],
  ["vars.*", [], LS("op_idx_star.json"), { vars: 123 }],
  ["vars.*", ["zero", "one"], LS("op_idx_star.json"), { vars: ["zero", "one"] }],
  ["vars.*", ["one val", "two val"], LS("op_idx_star.json"), { vars: { one: "one val", two: "two val" } }],
  [
    "vars[*]",
    ["one val", "two val", "star val"],
    LS("op_idx.json"),
    { vars: { one: "one val", two: "two val", "*": "star val" } },
  ],
  ["vars['*']", "star val", LS("op_idx.json"), { vars: { one: "one val", "*": "star val" } }],
  [
    "vars.*.one",
    ["obj_1_prop_1", "obj_3_prop_1"],
    LS("op_idx_star.json"),
    { vars: [{ one: "obj_1_prop_1" }, { zero: "obj_2_prop_0" }, { one: "obj_3_prop_1" }] },
  ],
  ["vars[*]['']", ["empty string"], LS("op_idx_star.json"), { vars: [{ "": "empty string" }] }],
  ["vars.*.thePROPERTY", ["the property"], LS("op_idx_star.json"), { vars: [{ THEproperty: "the property" }] }],
  [
    "vars[*][1]",
    ["ary_0_idx_1", "ary_2_idx_1"],
    LS("op_idx_star.json"),
    { vars: [["ary_0_idx_0", "ary_0_idx_1"], ["ary_1_idx_0"], ["ary_2_idx_0", "ary_2_idx_1"]] },
  ],
  ["vars[*][true]", ["one"], LS("op_idx_star.json"), { vars: [["zero", "one", "two"]] }],
  ["vars[*]['abc']", [], LS("op_idx_star.json"), { vars: [["zero", "one", "two"]] }],
  [
    "vars.*.*",
    ["zero", "one", "two", "v1", "v2", "v3"],
    LS("op_idx_star.json"),
    { vars: [null, false, true, 123, "hello", ["zero", "one", "two"], { p1: "v1", p2: "v2", p3: "v3" }] },
  ],
  [
    "vars.*.p.nestedp",
    ["val 1", "val 2"],
    LS("op_idx_star.json"),
    { vars: [{ p: { nestedp: "val 1" } }, { p: { nestedp: "val 2" } }] },
  ],
  ["vars.*.bar", [], LS("op_idx_star.json"), { vars: {} }],
  ["vars[*][1][2]", [], LS("op_idx_star.json"), { vars: [] }],
  ["contains(needs.*.result, 'success')", true, ACT, ACT_CONTEXTS],
  ["contains(needs.*.result, 'failure')", false, ACT, ACT_CONTEXTS],

  // contains, startsWith, endsWith
  ["contains('Hello world', 'llo')", true, `${DOCS} (contains)`],
  ["startsWith('Hello world', 'he')", true, `${DOCS} (startsWith, case-insensitive)`],
  ["endsWith('Hello world', 'LD')", true, `${DOCS} (endsWith, case-insensitive)`],
  ["contains('abCdEf', 'cDe')", true, LS("contains.json")],
  ["contains('abcdef', '')", true, LS("contains.json")],
  ["contains('1234', 23)", true, LS("contains.json")],
  ["contains('true', false)", false, LS("contains.json")],
  ["contains(vars, 123)", true, LS("contains.json"), { vars: [123] }],
  ["contains(vars, null)", true, LS("contains.json"), { vars: [""] }],
  ["contains(vars.*, null)", true, LS("contains.json"), { vars: [""] }],
  ["contains(true, 'u')", true, ACT_FUNCTIONS],
  ["contains(null, '')", true, ACT_FUNCTIONS],
  ["contains(fromJSON('[true,\"second\"]'), 'true')", false, ACT_FUNCTIONS],
  ["contains(fromJSON('[3.14,\"second\"]'), '3.14')", true, ACT_FUNCTIONS],
  ["contains(fromJSON('[\"\",\"second\"]'), fromJSON('[]'))", false, ACT_FUNCTIONS],
  ["startsWith('1234', 12)", true, LS("startsWith.json")],
  ["startsWith('asdf', null)", true, LS("startsWith.json")],
  ["startsWith('ABCDEFGHIJKLMNOPQRSTUVWXYZ_asdf', 'abcdefghijklmnopqrstuvwxyz')", true, LS("startsWith.json")],
  ["startsWith(123, '12')", true, ACT_FUNCTIONS],
  ["endsWith(null, '42')", false, ACT_FUNCTIONS],
  ["endsWith('123', 23)", true, ACT_FUNCTIONS],

  // format, with {{ }} escaping
  ["format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat", `${DOCS} (format)`],
  [
    "format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')",
    "{Hello Mona the Octocat!}",
    `${DOCS} (format, escaped braces)`,
  ],
  ["format('123{0}456{0}789', 'abc')", "123abc456abc789", LS("format.json")],
  ["format('{0}123', 'abc')", "abc123", LS("format.json")],
  ["format('{{0}}', 'abc')", "{0}", LS("format.json")],
  ["format('{{{{0}}}}', 'abc')", "{{0}}", LS("format.json")],
  ["format('}}', 'abc')", "}", LS("format.json")],
  ["format('}}{{}}', 'abc')", "}{}", LS("format.json")],
  ["format('{0}', -0)", "0", LS("format.json")],
  ["format('{0}', -Infinity)", "-Infinity", LS("format.json")],
  ["format('{0}', 12345678901234567890)", "1.23456789012346E+19", RUNNER_G15],
  ["format('{0}', 1e-7)", "1E-07", RUNNER_G15],
  ["format('{0} {1}', 0.0001, 0.00001)", "0.0001 1E-05", `${RUNNER_G15}: fixed down to exponent -4`],
  ["format('{0} {1}', 123456789012345, 1e15)", "123456789012345 1E+15", `${RUNNER_G15}: up to 15 digits`],
  ["format('{0}', 999999999999999.9)", "1E+15", `${RUNNER_G15}: rounded first`],
  ["format('{0}', 0.333333333333333333)", "0.333333333333333", RUNNER_G15],
  ["format('{0}', 1.7976931348623157e308)", "1.79769313486232E+308", RUNNER_G15],
  ["join(fromJSON('[1e-7, 2.5e20]'), ' ')", "1E-07 2.5E+20", RUNNER_G15],
  ["startsWith(1e21, '1E+21')", true, RUNNER_G15],
  ["format(null)", "", LS("format.json")],
  ["format('{{{0}}}', 'test')", "{test}", ACT_FUNCTIONS],
  [
    "format('Hello \"{0}\" {1} {2} {3} {4}', null, true, -3.14, NaN, Infinity)",
    'Hello "" true -3.14 NaN Infinity',
    ACT_FUNCTIONS,
  ],
  [
    "format('{0} {1} {2}', fromJSON('[0, true]'), fromJSON('[{\"a\":1}]'), fromJSON('{\"a\":{\"b\":1}}'))",
    "Array Array Object",
    ACT_FUNCTIONS,
  ],
  [`format('echo Hello {0} \${{Test}}', github.undefined_property)`, `echo Hello  \${Test}`, ACT_FUNCTIONS],

  // join, with and without a separator
  ["join(github.event.commits.*.m, ', ')", "a, b", `${DOCS} (join)`],
  ["join('abc')", "abc", `${DOCS} (join of a string)`],
  ["join(null)", "", LS("join.json")],
  ["join(true)", "true", LS("join.json")],
  ["join(123.456)", "123.456", LS("join.json")],
  ["join(vars)", "", LS("join.json"), { vars: { key1: "value1" } }],
  [
    "join(vars)",
    ",true,123.456,abc,Array,Array,Object,Object",
    LS("join.json"),
    { vars: [null, true, 123.456, "abc", [], ["def"], {}, { key1: "value1" }] },
  ],
  ["join(vars, null)", "_ITEM-1__ITEM-2__ITEM-3_", LS("join.json"), ITEMS],
  ["join(vars, true)", "_ITEM-1_true_ITEM-2_true_ITEM-3_", LS("join.json"), ITEMS],
  ["join(vars, 123.456)", "_ITEM-1_123.456_ITEM-2_123.456_ITEM-3_", LS("join.json"), ITEMS],
  ["join(vars, ' | ')", "_ITEM-1_ | _ITEM-2_ | _ITEM-3_", LS("join.json"), ITEMS],
  ["join(vars, inputs)", "_ITEM-1_,_ITEM-2_,_ITEM-3_", LS("join.json"), { ...ITEMS, inputs: {} }],
  ['join(fromJSON(\'["a", "b"]\'))', "a,b", ACT_FUNCTIONS],
  ['join(fromJSON(\'["a", "b", null]\'), 1)', "a1b1", ACT_FUNCTIONS],

  // toJSON and fromJSON, and round trips through both
  ["toJSON(matrix.node)", "20", `${DOCS} (toJSON)`],
  ["fromJSON('{\"a\":[1,true]}').a[1]", true, `${DOCS} (fromJSON)`],
  ["fromJSON('3') == 3", true, `${DOCS} (fromJSON of a number)`],
  ["tojson(null)", "null", LS("tojson.json")],
  ["tojson(-0)", "0", LS("tojson.json")],
  ["tojson(-1234.5)", "-1234.5", LS("tojson.json")],
  ["tojson('abc''def')", '"abc\'def"', LS("tojson.json")],
  ["tojson(vars)", "[]", LS("tojson.json"), { vars: [] }],
  ["tojson(vars)", "{}", LS("tojson.json"), { vars: {} }],
  ["tojson(vars)", "[\n  1,\n  2,\n  3\n]", LS("tojson.json"), { vars: [1, 2, 3] }],
  [
    "tojson(vars)",
    '{\n  "one": "value one",\n  "two": 2\n}',
    LS("tojson.json"),
    { vars: { one: "value one", two: 2 } },
  ],
  ["fromJSON('null')", null, LS("fromJSON.json")],
  ["fromJSON('-1234.5')", -1234.5, LS("fromJSON.json")],
  ["fromJSON('\"abc''def\"')", "abc'def", LS("fromJSON.json")],
  ["fromJSON('[1, 2, 3]')", [1, 2, 3], LS("fromJSON.json")],
  [
    "fromJSON('[[1, 2, 3], [\"abc\"], [true, false, null, [], {}]]')",
    [[1, 2, 3], ["abc"], [true, false, null, [], {}]],
    LS("fromJSON.json"),
  ],
  ['fromJSON(\'{"one": "value one", "two": 2}\')', { one: "value one", two: 2 }, LS("fromJSON.json")],
  ["toJSON(null)", "null", ACT_FUNCTIONS],
  ["toJSON(env)", '{\n  "key": "value"\n}', ACT_FUNCTIONS, { env: { key: "value" } }],
  [
    "fromJSON(toJSON(vars))",
    { list: [1, "two", null, { deep: [true] }], n: -1.5 },
    `${LS("tojson.json")} + ${LS("fromJSON.json")} (round trip)`,
    { vars: { list: [1, "two", null, { deep: [true] }], n: -1.5 } },
  ],
  [
    "toJSON(fromJSON('[true,{\"a\":null}]'))",
    '[\n  true,\n  {\n    "a": null\n  }\n]',
    `${LS("fromJSON.json")} + ${LS("tojson.json")} (round trip)`,
  ],

  // Contexts
  ["env.NAME", "world", `${DOCS} (env context)`],
  ["steps.build.outputs.n >= 3", true, `${DOCS}: a string output compared as a number`],
  ["matrix.os == 'linux' && matrix.node == 20", true, `${DOCS} (matrix context)`],
  ["case(github.event_name == 'push', 'Push Event', 'other')", "Push Event", RUNNER_PARSER],
];

const CONDITIONS: Array<[string, { failed: boolean; cancelled: boolean }, boolean, string]> = [
  ["", { failed: false, cancelled: false }, true, `${DOCS}: no if means success()`],
  ["", { failed: true, cancelled: false }, false, `${DOCS}: success() is false after a failure`],
  ["github.ref == 'refs/heads/main'", { failed: true, cancelled: false }, false, `${DOCS}: implicit success() &&`],
  [
    `\${{ github.event_name == 'push' }}`,
    { failed: false, cancelled: false },
    true,
    `${DOCS}: an if may be wrapped in an expression block`,
  ],
  ["failure()", { failed: true, cancelled: false }, true, `${DOCS} (failure)`],
  ["always()", { failed: true, cancelled: true }, true, `${DOCS} (always)`],
  ["cancelled()", { failed: false, cancelled: true }, true, `${DOCS} (cancelled)`],
  [
    "!cancelled()",
    { failed: true, cancelled: false },
    true,
    `${DOCS}: a status function present, no implicit success()`,
  ],
  [
    "failure() && steps.build.outcome == 'success'",
    { failed: true, cancelled: false },
    true,
    `${DOCS} (steps outcome)`,
  ],
  ["always()", { failed: false, cancelled: false }, true, RUNNER_CONDITIONS],
  ["always()", { failed: false, cancelled: true }, true, RUNNER_CONDITIONS],
  ["cancelled()", { failed: false, cancelled: false }, false, RUNNER_CONDITIONS],
  ["cancelled()", { failed: true, cancelled: false }, false, RUNNER_CONDITIONS],
  ["failure()", { failed: false, cancelled: false }, false, RUNNER_CONDITIONS],
  ["failure()", { failed: false, cancelled: true }, false, RUNNER_CONDITIONS],
  ["success()", { failed: false, cancelled: false }, true, RUNNER_CONDITIONS],
  ["success()", { failed: false, cancelled: true }, false, RUNNER_CONDITIONS],
  ["success()", { failed: true, cancelled: false }, false, RUNNER_CONDITIONS],
];

/** [expression, 1-based column, reason, source] */
const ERRORS: Array<[string, number, RegExp, string]> = [
  ["github.ref ==", 12, /Unexpected end of expression/, `${DOCS} (grammar)`],
  ["nosuch.x", 1, /unknown context: 'nosuch'/, `${DOCS}: only the listed contexts exist`],
  ["frob(1)", 1, /unknown function: 'frob'/, `${DOCS}: only the listed functions exist`],
  ["contains('a')", 1, /Too few parameters supplied: 'contains'/, `${DOCS}: contains takes two arguments`],
  ['"double"', 1, /Unexpected symbol/, `${DOCS}: strings use single quotes`],
  ["nosuchcontext.foo", 1, /unknown context: 'nosuchcontext'/, LS("basic.json")],
  ["nonExistentFunction()", 1, /unknown function: 'nonExistentFunction'/, LS("syntax-errors.json")],
  ["1 <", 3, /Unexpected end of expression: '<'/, LS("syntax-errors.json")],
  ["1 < )", 5, /Unexpected symbol: '\)'/, LS("syntax-errors.json")],
  ["> 1", 1, /Unexpected symbol: '>'/, LS("syntax-errors.json")],
  ["github.()", 8, /Unexpected symbol: '\('/, LS("syntax-errors.json")],
  ["endswith(1, 2 a)", 15, /Unexpected symbol: 'a'/, LS("syntax-errors.json")],
  ["(1,", 3, /Unexpected symbol: ','/, LS("syntax-errors.json")],
  ["tojson(1)2", 10, /Unexpected symbol: '2'/, LS("syntax-errors.json")],
  ["fromjson(a,b ", 10, /unknown context: 'a'/, LS("syntax-errors.json")],
  [" true ||( false && false", 20, /Unexpected end of expression: 'false'/, LS("syntax-errors.json")],
  ["1 = < 2", 3, /Unexpected symbol: '='/, LS("syntax-errors.json")],
  ["1 & < 2", 3, /Unexpected symbol: '&'/, LS("syntax-errors.json")],
  ["1 @abc 2", 3, /Unexpected symbol: '@abc'/, LS("syntax-errors.json")],
  ["'foo", 1, /Unexpected symbol: ''foo'/, `${LS("syntax-errors.json")} (a string not closed)`],
  ["1 && 'foo", 6, /Unexpected symbol: ''foo'/, `${LS("syntax-errors.json")} (a string not closed)`],
  ["..github/workflow.md", 1, /Unexpected symbol: '\.\.github\/workflow\.md'/, LS("syntax-errors.json")],
  [`${"!".repeat(50)} false`, 52, /Exceeded max expression depth 50/, LS("syntax-errors.json")],
  ["join()", 1, /Too few parameters supplied: 'join'/, LS("join.json")],
  ["join(1, 2, 3)", 1, /Too many parameters supplied: 'join'/, LS("join.json")],
  ["startsWith('true', false, true)", 1, /Too many parameters supplied: 'startsWith'/, LS("startsWith.json")],
  ["format('{0')", 1, /format string is invalid/, LS("format.json")],
  ["format('{0}}', '')", 1, /format string is invalid/, LS("format.json")],
  ["format('0}')", 1, /format string is invalid/, LS("format.json")],
  ["format('}{0}', '')", 1, /format string is invalid/, LS("format.json")],
  ["format('{0}')", 1, /references more arguments than were supplied/, LS("format.json")],
  ["format('{0}{1}', 'abc')", 1, /references more arguments than were supplied/, LS("format.json")],
  ["format('{2}', '{1}', 'World')", 1, /references more arguments than were supplied/, ACT_FUNCTIONS],
];

/** A hint names what to do for the errors users meet most. */
const HINTS: Array<[string, RegExp]> = [
  ["githb.ref", /did you mean `github`\?/],
  ["fromJSN('{}')", /did you mean `fromJSON`\?/],
  ["join()", /join\(\) takes 1 or 2 arguments/],
  ["'unclosed", /a string is not closed/],
  ["format('{0')", /\{\{ and \}\} for literal braces/],
];

describe("conformance: the expression language, as documented and as other implementations test it", () => {
  it(`evaluates each of the ${VALUES.length} expressions to its recorded value`, () => {
    for (const [expression, expected, source, contexts] of VALUES) {
      assert.deepEqual(evaluateExpression(expression, contexts ?? CONTEXTS), expected, `${expression} (${source})`);
    }
  });

  it(`decides each of the ${CONDITIONS.length} conditions with the implicit success() &&`, () => {
    for (const [text, status, expected, source] of CONDITIONS) {
      const decided = evaluateCondition(text, CONTEXTS, { jobFailed: status.failed, cancelled: status.cancelled });
      assert.equal(decided, expected, `${text} (${source})`);
    }
  });

  it(`rejects each of the ${ERRORS.length} invalid expressions with a typed error naming the expression, column and reason`, () => {
    for (const [expression, column, reason, source] of ERRORS) {
      assert.throws(
        () => evaluateExpression(expression, CONTEXTS),
        (e: unknown) =>
          e instanceof ExpressionError &&
          e.column === column &&
          reason.test(e.reason) &&
          e.message.includes(expression),
        `${expression} (${source})`,
      );
    }
  });

  it("says what to do about a misspelt name, a wrong argument count, an open string and a bad format string", () => {
    for (const [expression, hint] of HINTS) {
      assert.throws(
        () => evaluateExpression(expression, CONTEXTS),
        (e: unknown) => e instanceof ExpressionError && hint.test(e.hint ?? ""),
        expression,
      );
    }
  });
});
