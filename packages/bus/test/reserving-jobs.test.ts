import assert from "node:assert/strict";
import { test } from "node:test";
import { createSlotGate, type JobDelivery } from "../src/index.ts";
import { eventually, makeJob, withLabelQueues } from "./bus-fixture.ts";

// `taking: "reserve"`: one consumer per label, armed only while a slot of its label is reserved.

test("reserving: a full label holds no delivery and no consumer; the next job waits ready until a release", {
  timeout: 30_000,
}, async () => {
  await withLabelQueues(["linux", "bsd"], async ({ bus, namespace, raw }) => {
    const queue = (label: string) => `${namespace}.jobs.v1.${label}`;
    for (const label of ["linux", "linux", "linux", "bsd"]) await bus.publishJob(makeJob(label));
    const slots = createSlotGate({ total: 3, perLabel: { linux: 2, bsd: 1 } });
    const held: JobDelivery[] = [];
    const consumer = await bus.consumeJobs({
      labels: ["linux", "bsd"],
      slots,
      taking: "reserve",
      onJob: async (_job, delivery) => {
        held.push(delivery);
        await delivery.ack();
      },
    });
    await eventually(() => (held.length >= 3 ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(held.map((d) => d.label).sort(), ["bsd", "linux", "linux"]);
    const linux = await raw.channel.checkQueue(queue("linux"));
    assert.equal(linux.messageCount, 1, "the third linux job stays ready for other hosts");
    assert.equal(linux.consumerCount, 0, "a full label has no consumer");
    assert.equal((await raw.channel.checkQueue(queue("bsd"))).consumerCount, 0);

    slots.release("linux");
    await eventually(() => held[3]);
    assert.equal(held[3]?.label, "linux");
    assert.equal((await raw.channel.checkQueue(queue("linux"))).messageCount, 0);
    await consumer.stop();
    assert.equal(slots.inUse().total, 3, "three jobs still hold their slots; no reservation is left");
  });
});

test("reserving: an idle label is subscribed with its slot reserved, and stop gives the slot back", {
  timeout: 30_000,
}, async () => {
  await withLabelQueues(["tiny"], async ({ bus, namespace, raw }) => {
    const slots = createSlotGate({ total: 2, perLabel: { tiny: 2 } });
    const jobs: string[] = [];
    const consumer = await bus.consumeJobs({
      labels: ["tiny"],
      slots,
      taking: "reserve",
      onJob: async (job, delivery) => {
        jobs.push(job.jobId);
        await delivery.ack();
        slots.release(delivery.label);
      },
    });
    await eventually(async () =>
      (await raw.channel.checkQueue(`${namespace}.jobs.v1.tiny`)).consumerCount === 1 ? true : undefined,
    );
    assert.equal(slots.inUse().total, 1, "one slot is reserved for the next delivery");
    const job = makeJob("tiny");
    await bus.publishJob(job);
    await eventually(() => jobs[0]);
    assert.deepEqual(jobs, [job.jobId]);
    await consumer.stop();
    assert.equal(slots.inUse().total, 0, "stop releases the reservation");
    assert.equal((await raw.channel.checkQueue(`${namespace}.jobs.v1.tiny`)).consumerCount, 0);
  });
});

test("reserving: a job whose handler throws goes back to its queue and is delivered again", {
  timeout: 20_000,
}, async () => {
  await withLabelQueues(["tiny"], async ({ bus }) => {
    await bus.publishJob(makeJob("tiny"));
    const slots = createSlotGate({ total: 1, perLabel: { tiny: 1 } });
    const redelivered: boolean[] = [];
    const consumer = await bus.consumeJobs({
      labels: ["tiny"],
      slots,
      taking: "reserve",
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
    assert.equal(slots.inUse().total, 0);
  });
});
