import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { FleetKeyring, generateFleetKey, parseFleetKeys } from "@solstice/protocol";
import fc from "fast-check";
import { GitHubRunnerError, parseJobMessage, planJob } from "../src/index.ts";

// GitHub's job message is the one input this service takes from outside the fleet. Decoding and
// planning must end in a JobMessage and a JobPlan (which fails the job with its problems when it
// cannot run), or in a GitHubRunnerError — never in another exception.
// 3 properties × 1,000 runs = 3,000 generated messages per run of this file.
const RUNS = { numRuns: 1_000 };
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("fuzz")));
const fixturePath = path.join(import.meta.dirname, "../../../test/fakes/github/fixtures/job-message.json");
const fixture = JSON.parse(await readFile(fixturePath, "utf8")) as Record<string, unknown>;

const json = fc.jsonValue({ maxDepth: 4 });
/** Template tokens as the runner's serializer writes them (type 0–3 literals, 3 expressions, maps, lists), and junk. */
const token = fc.letrec<{ t: unknown }>((tie) => ({
  t: fc.oneof(
    { depthSize: "small" },
    fc.string({ maxLength: 20 }),
    fc.record({ type: fc.constant(0), lit: fc.oneof(fc.string({ maxLength: 20 }), json) }),
    fc.record({
      type: fc.constant(3),
      expr: fc.constantFrom("secrets.X", "github.sha", "steps.a.outputs.b", "((", ""),
    }),
    fc.record({ type: fc.constant(2), map: fc.array(fc.record({ Key: tie("t"), Value: tie("t") }), { maxLength: 3 }) }),
    fc.record({ type: fc.constant(1), seq: fc.array(tie("t"), { maxLength: 3 }) }),
    json,
  ),
})).t;
const step = fc.record(
  {
    type: fc.constantFrom("action", "Action", 1, "other"),
    reference: fc.oneof(
      fc.record({ type: fc.constantFrom("script", "repository", 1, 2), name: fc.string({ maxLength: 20 }) }),
      json,
    ),
    id: fc.oneof(fc.uuid(), fc.string({ maxLength: 10 })),
    name: fc.string({ maxLength: 20 }),
    contextName: fc.string({ maxLength: 10 }),
    inputs: token,
    environment: token,
    condition: fc.oneof(fc.string({ maxLength: 30 }), json),
    timeoutInMinutes: token,
    continueOnError: token,
  },
  { requiredKeys: [] },
);

function decodeAndPlan(message: unknown): void {
  try {
    const parsed = parseJobMessage(message);
    const plan = planJob(parsed, { owner: "github-1", fleetLabel: "tiny", keyring });
    assert.ok(plan.ok ? plan.request.jobId !== "" : plan.problems.length > 0, "a plan either runs or says why not");
  } catch (error) {
    if (!(error instanceof GitHubRunnerError)) throw error;
  }
}

test("arbitrary JSON is refused with a GitHubRunnerError or planned", () => {
  fc.assert(
    fc.property(json, (value) => decodeAndPlan(value)),
    RUNS,
  );
});

test("the real message shape with any steps, contexts and variables decodes and plans without an unexpected throw", () => {
  fc.assert(
    fc.property(
      fc.array(step, { maxLength: 4 }),
      fc.dictionary(fc.string({ maxLength: 10 }), token, { maxKeys: 4 }),
      fc.dictionary(fc.string({ maxLength: 10 }), fc.record({ value: fc.string(), isSecret: fc.boolean() }), {
        maxKeys: 4,
      }),
      (steps, contextData, variables) =>
        decodeAndPlan({
          ...fixture,
          steps,
          contextData: { ...(fixture.contextData as object), ...contextData },
          variables,
        }),
    ),
    RUNS,
  );
});

test("any single field of the real message replaced by arbitrary JSON decodes and plans without an unexpected throw", () => {
  const keys = Object.keys(fixture);
  fc.assert(
    fc.property(fc.constantFrom(...keys), json, (key, value) => decodeAndPlan({ ...fixture, [key]: value })),
    RUNS,
  );
});

// Found by the property above (seed -524999070): JSON may hold an object whose "toString" is not a
// function, and String() or Number() on it throws a TypeError. Such a value where a scalar belongs
// is unreadable input, refused with the job's problems, never an exception.
test('a value like {"toString": {}} where the message has a scalar is refused, not thrown', () => {
  const poisoned = { toString: {} };
  decodeAndPlan({ ...fixture, steps: [{ timeoutInMinutes: { type: 0, lit: poisoned } }] });
  decodeAndPlan({ ...fixture, steps: [{ timeoutInMinutes: { type: 3, expr: poisoned } }] });
  decodeAndPlan({ ...fixture, steps: [{ timeoutInMinutes: { type: 6, num: poisoned } }] });
  decodeAndPlan({ ...fixture, steps: [{ timeoutInMinutes: { type: poisoned } }] });
  decodeAndPlan({ ...fixture, steps: [{ type: poisoned }] });
  decodeAndPlan({ ...fixture, steps: [{ type: "action", reference: { type: poisoned } }] });
  decodeAndPlan({
    ...fixture,
    contextData: {
      ...(fixture.contextData as object),
      poisoned: { t: 2, d: [{ k: poisoned, v: { t: 4, n: poisoned } }] },
    },
  });
});
