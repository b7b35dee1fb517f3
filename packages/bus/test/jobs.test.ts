import assert from "node:assert/strict";
import { test } from "node:test";
import { type JobRequest, SCHEMA_VERSION } from "@solstice/protocol";
import {
  createSlotGate,
  type JobDelivery,
  ORIGINAL_QUEUE_HEADER,
  REASON_CODE_HEADER,
  REASON_HEADER,
  UnroutableLabelError,
} from "../src/index.ts";
import { eventually, makeJob, withLabelQueues } from "./bus-fixture.ts";

test("a published job is consumed decoded, with its fields", { timeout: 20_000 }, async () => {
  await withLabelQueues(["debian-12"], async ({ bus }) => {
    const received: Array<{ job: JobRequest; delivery: JobDelivery }> = [];
    const consumer = await bus.consumeJobs({
      labels: ["debian-12"],
      slots: createSlotGate({ total: 1 }),
      onJob: async (job, delivery) => {
        received.push({ job, delivery });
        await delivery.ack();
      },
    });
    const job = makeJob("debian-12", { attempt: 2, jobName: "test (ubuntu)", env: { CI: "true" } });
    await bus.publishJob(job);
    const first = await eventually(() => received[0]);
    await consumer.stop();
    assert.equal(first.job.jobId, job.jobId);
    assert.equal(first.job.attempt, 2);
    assert.equal(first.job.jobName, "test (ubuntu)");
    assert.deepEqual(first.job.env, { CI: "true" });
    assert.equal(first.job.schemaVersion, SCHEMA_VERSION);
    assert.equal(first.delivery.label, "debian-12");
    assert.equal(first.delivery.messageId, `${job.jobId}/2`);
  });
});

test("a job for a label without a queue fails at once with UnroutableLabelError naming it", {
  timeout: 20_000,
}, async () => {
  await withLabelQueues(
    ["debian-12"],
    async ({ bus }) => {
      const started = Date.now();
      await assert.rejects(bus.publishJob(makeJob("omnios-r151054")), (error: unknown) => {
        assert.ok(error instanceof UnroutableLabelError);
        assert.equal(error.code, "unroutable_label");
        assert.match(error.message, /omnios-r151054/);
        assert.equal(error.hint?.startsWith("served: debian-12, ubuntu-24.04"), true);
        return true;
      });
      assert.ok(Date.now() - started < 2_000, "the return should come back at once");
      // A routable job on the same channel still goes through.
      await bus.publishJob(makeJob("debian-12"));
    },
    { servedLabels: () => ["ubuntu-24.04"] },
  );
});

test("undecodable jobs land in the dead-letter queue with the reason while the consumer goes on", {
  timeout: 30_000,
}, async () => {
  await withLabelQueues(["tiny"], async ({ bus, namespace, raw }) => {
    const queue = `${namespace}.jobs.v1.tiny`;
    raw.channel.sendToQueue(queue, Buffer.from([0xff, 0xff, 0xff, 0xff]), {
      type: "solstice.v1.JobRequest",
      messageId: "garbage",
      persistent: true,
    });
    await bus.publishJob(makeJob("tiny", { schemaVersion: "2.0", jobId: "future-job" }));
    const good = makeJob("tiny");
    await bus.publishJob(good);

    const received: JobRequest[] = [];
    const slots = createSlotGate({ total: 1 });
    const consumer = await bus.consumeJobs({
      labels: ["tiny"],
      slots,
      onJob: async (job, delivery) => {
        received.push(job);
        await delivery.ack();
        slots.release(delivery.label);
      },
    });
    await eventually(() => received[0]);
    await consumer.stop();
    assert.deepEqual(
      received.map((job) => job.jobId),
      [good.jobId],
    );

    const letters = await eventually(async () => {
      const found = await bus.listDeadLetters(10);
      return found.length === 2 ? found : undefined;
    });
    const garbage = letters.find((letter) => letter.messageId === "garbage");
    const future = letters.find((letter) => letter.messageId === "future-job/1");
    assert.ok(garbage && future);
    assert.equal(garbage.reasonCode, "bad_bytes");
    assert.match(garbage.reason, /not a solstice\.v1\.JobRequest/);
    assert.equal(garbage.originalQueue, queue);
    assert.equal(future.reasonCode, "unknown_major");
    assert.match(future.reason, /schema_version 2\.0/);

    // The headers are on the message itself, for any tool that reads the queue.
    const dead = await raw.channel.get(`${namespace}.dlq`, { noAck: true });
    assert.ok(dead);
    assert.equal(typeof dead.properties.headers?.[REASON_HEADER], "string");
    assert.equal(typeof dead.properties.headers?.[REASON_CODE_HEADER], "string");
    assert.equal(dead.properties.headers?.[ORIGINAL_QUEUE_HEADER], queue);
    assert.equal(dead.properties.type, "solstice.v1.JobRequest");
    assert.equal((await raw.channel.checkQueue(queue)).messageCount, 0);
  });
});

test("a delivery rejected with a reason is dead-lettered with that reason", { timeout: 20_000 }, async () => {
  await withLabelQueues(["tiny"], async ({ bus }) => {
    const job = makeJob("tiny");
    await bus.publishJob(job);
    let rejected = false;
    const consumer = await bus.consumeJobs({
      labels: ["tiny"],
      slots: createSlotGate({ total: 1 }),
      onJob: async (_job, delivery) => {
        await delivery.reject("needs a uses: step we cannot run");
        rejected = true;
      },
    });
    await eventually(() => (rejected ? true : undefined));
    await consumer.stop();
    const [letter] = await bus.listDeadLetters(5);
    assert.equal(letter?.messageId, `${job.jobId}/1`);
    assert.equal(letter?.reason, "needs a uses: step we cannot run");
    assert.equal(letter?.reasonCode, "rejected");
  });
});

test("with one slot free only one job is held; the other stays ready until the slot is released", {
  timeout: 30_000,
}, async () => {
  await withLabelQueues(["linux", "bsd"], async ({ bus, namespace, raw }) => {
    await bus.publishJob(makeJob("linux"));
    await bus.publishJob(makeJob("bsd"));

    const slots = createSlotGate({ total: 1 });
    const held: JobDelivery[] = [];
    const consumer = await bus.consumeJobs({
      labels: ["linux", "bsd"],
      slots,
      pollIntervalMs: 50,
      onJob: async (_job, delivery) => {
        held.push(delivery);
      },
    });
    const first = await eventually(() => held[0]);
    // Several poll intervals pass: the consumer must not take the second job meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(held.length, 1);
    const other = first.label === "linux" ? "bsd" : "linux";
    assert.equal((await raw.channel.checkQueue(`${namespace}.jobs.v1.${other}`)).messageCount, 1);

    await first.ack();
    slots.release(first.label);
    const second = await eventually(() => held[1]);
    assert.equal(second.label, other);
    await second.ack();
    slots.release(second.label);
    await consumer.stop();
    assert.equal((await raw.channel.checkQueue(`${namespace}.jobs.v1.${other}`)).messageCount, 0);
  });
});

test("per-label capacity keeps a full label from blocking another label", { timeout: 30_000 }, async () => {
  await withLabelQueues(["linux", "bsd"], async ({ bus, namespace, raw }) => {
    await bus.publishJob(makeJob("linux"));
    await bus.publishJob(makeJob("linux"));
    await bus.publishJob(makeJob("bsd"));
    const slots = createSlotGate({ total: 3, perLabel: { linux: 1 } });
    const held: JobDelivery[] = [];
    const consumer = await bus.consumeJobs({
      labels: ["linux", "bsd"],
      slots,
      pollIntervalMs: 50,
      onJob: async (_job, delivery) => {
        held.push(delivery);
      },
    });
    await eventually(() => (held.length >= 2 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(held.map((delivery) => delivery.label).sort(), ["bsd", "linux"]);
    assert.equal((await raw.channel.checkQueue(`${namespace}.jobs.v1.linux`)).messageCount, 1);
    await consumer.stop();
    // Still settleable after stop.
    for (const delivery of held) await delivery.ack();
  });
});

test("a job whose handler throws goes back to its queue and is delivered again", { timeout: 20_000 }, async () => {
  await withLabelQueues(["tiny"], async ({ bus }) => {
    const job = makeJob("tiny");
    await bus.publishJob(job);
    const slots = createSlotGate({ total: 1 });
    const redelivered: boolean[] = [];
    const consumer = await bus.consumeJobs({
      labels: ["tiny"],
      slots,
      pollIntervalMs: 50,
      onJob: async (_job, delivery) => {
        redelivered.push(delivery.redelivered);
        if (redelivered.length === 1) throw new Error("database unreachable");
        await delivery.ack();
        slots.release(delivery.label);
      },
    });
    await eventually(() => (redelivered.length === 2 ? true : undefined));
    await consumer.stop();
    assert.deepEqual(redelivered, [false, true]);
    assert.deepEqual(slots.inUse().total, 0);
  });
});
