import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { create, encodeMessage, JobRequestSchema, Outcome } from "@solstice/protocol";
import amqp from "amqplib";
import { AMQP_URL, tinyJob } from "../support/fleet.ts";
import { type HostProcess, type ProcessFleet, startProcessFleet } from "../support/process-fleet.ts";

const COUNT = 1_000;

let fleet: ProcessFleet;
let host: HostProcess;
before(async () => {
  fleet = await startProcessFleet();
  host = await fleet.startHost("malformed-a", "tiny=1,nobody=1");
});
after(async () => {
  await fleet?.close();
});

test(`${COUNT} malformed job messages all reach the dead-letter queue with reasons, and the host keeps serving`, {
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
  await channel.waitForConfirms();
  await connection.close();

  let letters = await fleet.bus.listDeadLetters(COUNT + 10);
  while (letters.length < COUNT && Date.now() - started < 150_000) {
    await new Promise((r) => setTimeout(r, 1000));
    letters = await fleet.bus.listDeadLetters(COUNT + 10);
  }
  const seconds = (Date.now() - started) / 1000;
  const reasons = new Map<string, number>();
  for (const l of letters) reasons.set(l.reasonCode, (reasons.get(l.reasonCode) ?? 0) + 1);
  t.diagnostic(
    `${letters.length} dead letters in ${seconds.toFixed(1)} s; by reason: ${JSON.stringify(Object.fromEntries(reasons))}`,
  );
  assert.equal(letters.length, COUNT);
  assert.equal(new Set(letters.map((l) => l.messageId)).size, COUNT, "each message once");
  assert.ok(letters.every((l) => l.reason !== "unknown" && l.reason.length > 0));
  assert.equal(host.child.exitCode, null, "the orchestrator did not crash");

  // Still serving: a job for a label with no image is accepted and fails at once, booting nothing.
  const job = tinyJob(fleet.owner, [{ name: "never", run: "true" }], { runsOn: "nobody" });
  await fleet.bus.publishJob(job);
  const events = await fleet.waitFor(job.jobId, 60_000);
  const end = events.at(-1);
  assert.equal(end?.body.case === "jobFinished" ? end.body.value.result : undefined, Outcome.FAILURE);
});
