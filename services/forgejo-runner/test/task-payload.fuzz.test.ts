import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, type JsonObject } from "@bufbuild/protobuf";
import type { RunnerLabel } from "@solstice/forge-relay";
import fc from "fast-check";
import { stringify } from "yaml";
import { type Task, TaskSchema } from "../src/gen/runner/v1/messages_pb.ts";
import { countSteps, decodeTask, TaskPayloadError, taskMasks } from "../src/task-payload.ts";

// The forge's task is the one input this service takes from outside the fleet: its payload,
// context, secrets, needs and vars may be anything. Decoding must end in a DecodedTask or a
// TaskPayloadError (which fails the task with its message), never in another exception.
// 4 properties × 1,500 runs = 6,000 generated tasks per run of this file.
const RUNS = { numRuns: 1_500 };
const LABELS: RunnerLabel[] = [
  { name: "linux", fleetLabel: "tiny", raw: "linux:vm:tiny" },
  { name: "solstice-tiny", fleetLabel: "tiny", raw: "solstice-tiny:vm:tiny" },
  { name: "debian-12", fleetLabel: "debian-12", raw: "debian-12" },
];

/** Workflow-shaped documents: the keys a payload has, with values of every type in them. */
const scalar = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom("linux", "solstice-tiny", "debian-12", "self-hosted", `\${{ matrix.os }}`, `\${{ secrets.X }}`),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    scalar,
    fc.array(tie("v"), { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("v"), { maxKeys: 3 }),
  ),
})).v;
const step = fc.record(
  {
    name: scalar,
    run: fc.oneof(fc.string({ maxLength: 40 }), fc.constant(`echo \${{ github.sha }}`), value),
    uses: fc.oneof(fc.constantFrom("actions/checkout@v4", "actions/setup-go@v3", "./local"), value),
    if: fc.oneof(fc.constantFrom("always()", "needs.job1.result == 'success'", `\${{ }}`, "(("), value),
    env: fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 3 }),
    with: value,
    shell: fc.constantFrom("bash", "sh", "pwsh", "nonsense {0}"),
  },
  { requiredKeys: [] },
);
const job = fc.record(
  {
    name: scalar,
    "runs-on": fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), value),
    needs: fc.oneof(scalar, fc.array(fc.string({ maxLength: 6 }), { maxLength: 3 })),
    steps: fc.oneof(fc.array(step, { maxLength: 4 }), value),
    strategy: fc.oneof(
      fc.record({ matrix: value, "job-index": fc.integer(), "job-total": fc.integer() }, { requiredKeys: [] }),
      value,
    ),
    outputs: value,
    env: value,
    if: value,
    "timeout-minutes": value,
    services: value,
    container: value,
  },
  { requiredKeys: [] },
);
const workflowDoc = fc.record(
  {
    name: scalar,
    on: value,
    env: value,
    defaults: value,
    jobs: fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), job, { maxKeys: 3 }), value),
  },
  { requiredKeys: [] },
);
const VALID = `name: test
jobs:
  job2:
    name: job2
    needs: job1
    runs-on: linux
    steps:
      - run: uname -a
`;
/** A valid payload with a few characters replaced, inserted or cut. */
const mutated = fc
  .array(fc.tuple(fc.nat(VALID.length), fc.nat(3), fc.string({ maxLength: 3 })), { minLength: 1, maxLength: 4 })
  .map((edits) => edits.reduce((text, [at, cut, insert]) => text.slice(0, at) + insert + text.slice(at + cut), VALID));
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc.string({ maxLength: 600 }).map((s) => new TextEncoder().encode(s)),
  workflowDoc.map((doc) => new TextEncoder().encode(stringify(doc))),
  mutated.map((s) => new TextEncoder().encode(s)),
);
const contextValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 20 }));
const context = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 10 }), contextValue, { maxKeys: 5 }),
  fc.record(
    {
      token: contextValue,
      repository: contextValue,
      server_url: contextValue,
      sha: contextValue,
      ref: contextValue,
      workflow: contextValue,
      event: contextValue,
      forgejo_runtime_token: contextValue,
    },
    { requiredKeys: [] },
  ),
) as fc.Arbitrary<JsonObject>;
const strings = fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 4 });
const task: fc.Arbitrary<Task> = fc
  .record({
    id: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
    workflowPayload: fc.option(payload, { nil: undefined }),
    context: fc.option(context, { nil: undefined }),
    secrets: strings,
    vars: strings,
    needs: fc.dictionary(
      fc.string({ maxLength: 8 }),
      fc.record({ outputs: strings, result: fc.integer({ min: -3, max: 9 }) }),
      { maxKeys: 3 },
    ),
  })
  .map((init) => create(TaskSchema, init));

function decodesOrRefuses(t: Task): void {
  try {
    const decoded = decodeTask(t, LABELS);
    assert.ok(
      LABELS.some((l) => l === decoded.label && l.name === decoded.job.runsOn),
      "a decoded task names a label of this runner",
    );
  } catch (error) {
    assert.ok(error instanceof TaskPayloadError, `untyped error: ${String(error)}`);
    assert.ok(error.message.length > 0, "the refusal says why");
  }
}

describe("decoding forge tasks", () => {
  it("ends in a plan or a TaskPayloadError for any task", () => {
    fc.assert(fc.property(task, decodesOrRefuses), RUNS);
  });

  it("ends in a plan or a TaskPayloadError for workflow-shaped payloads with any context", () => {
    fc.assert(
      fc.property(workflowDoc, context, (doc, ctx) =>
        decodesOrRefuses(
          create(TaskSchema, { id: 1n, workflowPayload: new TextEncoder().encode(stringify(doc)), context: ctx }),
        ),
      ),
      RUNS,
    );
  });

  it("counts steps and lists masks without throwing, for any task", () => {
    fc.assert(
      fc.property(task, (t) => {
        assert.ok(countSteps(t) >= 0);
        const masks = taskMasks(t);
        for (const secret of Object.values(t.secrets))
          if (secret) assert.ok(masks.includes(secret), "every secret is masked");
      }),
      RUNS,
    );
  });

  it("plans every payload a valid one becomes after small edits, or refuses it with a reason", () => {
    fc.assert(
      fc.property(mutated, (text) =>
        decodesOrRefuses(create(TaskSchema, { id: 1n, workflowPayload: new TextEncoder().encode(text) })),
      ),
      RUNS,
    );
  });

  it("plans the forge's single-job payload of a job with needs, as Gitea's job parser writes it", () => {
    const decoded = decodeTask(
      create(TaskSchema, {
        id: 7n,
        workflowPayload: new TextEncoder().encode(VALID),
        needs: { job1: { outputs: { a: "1" }, result: 1 } },
      }),
      LABELS,
    );
    assert.equal(decoded.job.key, "job2");
    assert.equal(decoded.label.fleetLabel, "tiny");
  });

  it("takes where actions come from from the task: Forgejo's default actions URL, Gitea's, else the forge", () => {
    const actionsUrl = (context: JsonObject) =>
      decodeTask(create(TaskSchema, { id: 8n, workflowPayload: new TextEncoder().encode(VALID), context }), LABELS)
        .actionsUrl;
    const server = { server_url: "https://forge.example/" };
    assert.equal(
      actionsUrl({ ...server, forgejo_default_actions_url: "https://data.forgejo.org/" }),
      "https://data.forgejo.org",
    );
    assert.equal(actionsUrl({ ...server, gitea_default_actions_url: "https://github.com" }), "https://github.com");
    assert.equal(actionsUrl(server), "https://forge.example");
  });
});
