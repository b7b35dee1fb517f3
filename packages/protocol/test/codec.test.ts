import assert from "node:assert/strict";
import { test } from "node:test";
import {
  create,
  decodeMessage,
  encodeMessage,
  JobEventSchema,
  JobRequestSchema,
  SCHEMA_VERSION,
  UndecodableMessageError,
} from "../src/index.ts";

test("a JobRequest survives encode and decode with its steps", () => {
  const job = create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: "0b6f6f36-8c59-4c1f-9d3e-6d7f5d1b2a10",
    attempt: 1,
    runsOn: "tiny",
    steps: [{ index: 0, name: "hello", action: { case: "run", value: { script: "echo hi", shell: "bash -e {0}" } } }],
  });
  const back = decodeMessage(JobRequestSchema, encodeMessage(JobRequestSchema, job), "solstice.v1.JobRequest");
  assert.equal(back.jobId, job.jobId);
  assert.equal(back.steps[0]?.action.case, "run");
  assert.equal(back.steps[0]?.action.value?.script, "echo hi");
});

test("garbage bytes are refused with a reason", () => {
  assert.throws(
    () => decodeMessage(JobRequestSchema, new Uint8Array([0xff, 0xff, 0xff, 0x01]), undefined),
    (e: unknown) => e instanceof UndecodableMessageError && e.code === "bad_bytes",
  );
});

test("an unknown major schema version is refused and named", () => {
  const bytes = encodeMessage(JobRequestSchema, create(JobRequestSchema, { schemaVersion: "2.0", jobId: "x" }));
  assert.throws(
    () => decodeMessage(JobRequestSchema, bytes, undefined),
    (e: unknown) => e instanceof UndecodableMessageError && e.code === "unknown_major" && e.message.includes("2.0"),
  );
});

test("a newer minor version of a known major is accepted", () => {
  const bytes = encodeMessage(JobRequestSchema, create(JobRequestSchema, { schemaVersion: "1.7", jobId: "x" }));
  assert.equal(decodeMessage(JobRequestSchema, bytes, undefined).jobId, "x");
});

test("a message of another type is refused by its AMQP type property", () => {
  const bytes = encodeMessage(JobEventSchema, create(JobEventSchema, { schemaVersion: SCHEMA_VERSION }));
  assert.throws(
    () => decodeMessage(JobRequestSchema, bytes, "solstice.v1.JobEvent"),
    (e: unknown) => e instanceof UndecodableMessageError && e.code === "bad_type",
  );
});
