import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { create, encodeMessage, type JobRequest, JobRequestSchema, Outcome } from "@solstice/protocol";
import amqp from "amqplib";
import { projectRoot, runCiadm } from "../support/ciadm.ts";
import { AMQP_URL, tinyJob } from "../support/fleet.ts";
import { type HostProcess, type ProcessFleet, startProcessFleet } from "../support/process-fleet.ts";

const COUNT = 1_000;
const INVALID = 200;

/**
 * Decodable JobRequests that break one rule each: an empty owner (its Accepted could not be
 * published), attempt 0 and no job id (PostgreSQL refuses them), no label, no timeout, a step
 * without an action. None may reach a database row or a VM.
 */
function invalidJob(i: number): JobRequest {
  const valid = tinyJob(`owner-${i}`, [{ name: "s", run: "true" }]);
  const broken: Partial<JobRequest>[] = [
    { owner: "" },
    { attempt: 0, jobId: "" },
    { runsOn: "" },
    { timeoutSeconds: 0 },
    { owner: "a.b" },
    { steps: valid.steps.map((step) => ({ ...step, action: { case: undefined } })) },
  ];
  return create(JobRequestSchema, { ...valid, ...broken[i % broken.length] });
}

let fleet: ProcessFleet;
let host: HostProcess;
before(async () => {
  fleet = await startProcessFleet();
  host = await fleet.startHost("malformed-a", "tiny=1,nobody=1");
});
after(async () => {
  await fleet?.close();
});

test(`${COUNT} malformed and ${INVALID} decodable-but-invalid job messages all reach the dead-letter queue with reasons, no row stays running, and the host keeps serving`, {
  timeout: 180_000,
}, async (t) => {
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  const started = Date.now();
  // Three kinds of garbage: not protobuf, a protobuf of a future major schema version, and a
  // message that names another type.
  const future = Buffer.from(
    encodeMessage(
      JobRequestSchema,
      create(JobRequestSchema, { schemaVersion: "99.0", jobId: randomUUID(), attempt: 1 }),
    ),
  );
  for (let i = 0; i < COUNT; i++) {
    const kind = i % 3;
    channel.publish(
      `${fleet.namespace}.jobs`,
      "tiny",
      kind === 0 ? Buffer.from(`garbage ${i}`) : kind === 1 ? future : Buffer.from([0xff, 0xff, 0xff]),
      { persistent: true, messageId: `bad-${i}`, type: kind === 2 ? "solstice.v1.Nonsense" : "solstice.v1.JobRequest" },
    );
  }
  for (let i = 0; i < INVALID; i++) {
    channel.publish(`${fleet.namespace}.jobs`, "tiny", Buffer.from(encodeMessage(JobRequestSchema, invalidJob(i))), {
      persistent: true,
      messageId: `invalid-${i}`,
      type: "solstice.v1.JobRequest",
    });
  }
  await channel.waitForConfirms();
  await connection.close();
  const total = COUNT + INVALID;

  let letters = await fleet.bus.listDeadLetters(total + 10);
  while (letters.length < total && Date.now() - started < 150_000) {
    await new Promise((r) => setTimeout(r, 1000));
    letters = await fleet.bus.listDeadLetters(total + 10);
  }
  const seconds = (Date.now() - started) / 1000;
  const reasons = new Map<string, number>();
  for (const l of letters) reasons.set(l.reasonCode, (reasons.get(l.reasonCode) ?? 0) + 1);
  t.diagnostic(
    `${letters.length} dead letters in ${seconds.toFixed(1)} s; by reason: ${JSON.stringify(Object.fromEntries(reasons))}`,
  );
  assert.equal(letters.length, total);
  assert.equal(new Set(letters.map((l) => l.messageId)).size, total, "each message once");
  assert.ok(letters.every((l) => l.reason !== "unknown" && l.reason.length > 0));
  const invalid = letters.filter((l) => l.messageId?.startsWith("invalid-"));
  assert.equal(invalid.length, INVALID);
  assert.deepEqual(
    new Set(invalid.map((l) => l.reasonCode)),
    new Set(["invalid_job"]),
    "refused by us, not by the broker",
  );
  assert.deepEqual(await fleet.store.listJobs({ state: "running" }), [], "no phantom running job");
  assert.deepEqual(await fleet.store.listJobs(), [], "nothing invalid was recorded at all");
  // A list cut at --limit says how many more there are.
  const listed = await runCiadm(["dlq", "list", "--limit", "5"], projectRoot, fleet.ciadmEnv);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stderr, new RegExp(`showing 5 of ${total} dead letters; --limit ${total} shows more`));
  assert.equal(host.child.exitCode, null, "the orchestrator did not crash");

  // Still serving: a job for a label with no image is accepted and fails at once, booting nothing.
  const job = tinyJob(fleet.owner, [{ name: "never", run: "true" }], { runsOn: "nobody" });
  await fleet.bus.publishJob(job);
  const events = await fleet.waitFor(job.jobId, 60_000);
  const end = events.at(-1);
  assert.equal(end?.body.case === "jobFinished" ? end.body.value.result : undefined, Outcome.FAILURE);
  // One key, one meaning: a log pipeline keeps only one of two equal keys.
  assert.ok(host.logs.some((line) => line.job_id === job.jobId && line.host === "malformed-a"));
  assert.deepEqual(host.duplicateKeyLines, [], "no log line carries a key twice");
});
