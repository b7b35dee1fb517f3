import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { type Control, ControlSchema, create, type JobEvent, JobEventSchema, SCHEMA_VERSION } from "@solstice/protocol";
import { eventually, openBus, rawChannel, uniqueNamespace } from "./bus-fixture.ts";

function heartbeat(jobId: string, seq: number): JobEvent {
  return create(JobEventSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId,
    attempt: 1,
    seq: BigInt(seq),
    body: { case: "heartbeat", value: {} },
  });
}

test("events for an owner reach its queue in order and a follower gets only its job's events", {
  timeout: 30_000,
}, async () => {
  const namespace = uniqueNamespace();
  const bus = await openBus(namespace);
  try {
    await bus.declareTopology();
    const jobA = randomUUID();
    const jobB = randomUUID();
    const ownerSaw: Array<[string, bigint]> = [];
    const followerSaw: Array<[string, bigint]> = [];
    const owner = await bus.consumeEvents({
      owner: "runner-a",
      onEvent: async (event) => {
        ownerSaw.push([event.jobId, event.seq]);
      },
    });
    const follower = await bus.consumeEvents({
      jobId: jobB,
      onEvent: async (event) => {
        followerSaw.push([event.jobId, event.seq]);
      },
    });
    for (let seq = 1; seq <= 20; seq++) {
      await bus.publishEvent(heartbeat(seq % 2 === 0 ? jobA : jobB, seq), "runner-a");
    }
    // Another owner's event for job B: the follower sees it, runner-a does not.
    await bus.publishEvent(heartbeat(jobB, 21), "runner-b");
    await eventually(() => (ownerSaw.length === 20 && followerSaw.length === 11 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 200));
    await owner.stop();
    await follower.stop();
    assert.deepEqual(
      ownerSaw.map(([, seq]) => Number(seq)),
      Array.from({ length: 20 }, (_, index) => index + 1),
    );
    assert.ok(followerSaw.every(([jobId]) => jobId === jobB));
    assert.deepEqual(
      followerSaw.map(([, seq]) => Number(seq)),
      [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21],
    );
  } finally {
    await bus.deleteNamespace();
    await bus.close();
  }
});

test("an undecodable event goes to the dead-letter queue and the owner goes on", { timeout: 20_000 }, async () => {
  const namespace = uniqueNamespace();
  const bus = await openBus(namespace);
  const raw = await rawChannel();
  try {
    await bus.declareTopology();
    const seen: bigint[] = [];
    const owner = await bus.consumeEvents({
      owner: "runner-a",
      onEvent: async (event) => {
        seen.push(event.seq);
      },
    });
    const jobId = randomUUID();
    raw.channel.publish(`${namespace}.events`, `runner-a.${jobId}`, Buffer.from("hello"), {
      type: "solstice.v1.JobRequest",
      messageId: "wrong-type",
    });
    await bus.publishEvent(heartbeat(jobId, 1), "runner-a");
    await eventually(() => seen[0]);
    await owner.stop();
    const [letter] = await eventually(async () => {
      const letters = await bus.listDeadLetters(5);
      return letters.length > 0 ? letters : undefined;
    });
    assert.equal(letter?.messageId, "wrong-type");
    assert.equal(letter?.reasonCode, "bad_type");
    assert.equal(letter?.originalQueue, `${namespace}.events.runner-a`);
  } finally {
    await raw.connection.close();
    await bus.deleteNamespace();
    await bus.close();
  }
});

test("a control message reaches every listener", { timeout: 20_000 }, async () => {
  const namespace = uniqueNamespace();
  const bus = await openBus(namespace);
  const otherHost = await openBus(namespace);
  try {
    await bus.declareTopology();
    const heard: Control[] = [];
    const first = await bus.consumeControl(async (control) => {
      heard.push(control);
    });
    const second = await otherHost.consumeControl(async (control) => {
      heard.push(control);
    });
    const jobId = randomUUID();
    await bus.publishControl(
      create(ControlSchema, {
        schemaVersion: SCHEMA_VERSION,
        command: { case: "cancel", value: { jobId, attempt: 0, reason: "cancelled in the forge" } },
      }),
    );
    await eventually(() => (heard.length === 2 ? true : undefined));
    await first.stop();
    await second.stop();
    for (const control of heard) {
      assert.equal(control.command.case, "cancel");
      assert.equal(control.command.value?.jobId, jobId);
    }
  } finally {
    await bus.deleteNamespace();
    await otherHost.close();
    await bus.close();
  }
});
