import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { create, JobEventSchema, type JobRequest, SCHEMA_VERSION } from "@solstice/protocol";
import amqp, { type ChannelModel } from "amqplib";
import { BusUnavailableError, type ConnectionState, connectBus, createSlotGate } from "../src/index.ts";
import { AMQP_URL, eventually, makeJob, openBus, recordingConnect, testLog, uniqueNamespace } from "./bus-fixture.ts";

/** Cuts the TCP connection under amqplib, as a connection reset by the network would. */
function cutConnection(model: ChannelModel | undefined) {
  assert.ok(model, "no connection to cut");
  // amqplib notices a socket's 'error' or 'end', not a bare destroy (heartbeats would, later).
  const socket = (model.connection as unknown as { stream: { destroy(error: Error): void } }).stream;
  socket.destroy(Object.assign(new Error("read ECONNRESET (simulated)"), { code: "ECONNRESET" }));
}

test("after the connection is cut, consumers come back and receive what is published next", {
  timeout: 30_000,
}, async () => {
  const namespace = uniqueNamespace();
  const models: ChannelModel[] = [];
  const states: ConnectionState[] = [];
  const bus = await openBus(namespace, {
    connect: recordingConnect(models),
    onStateChange: (state) => states.push(state),
  });
  try {
    await bus.declareTopology();
    await bus.ensureLabelQueue("tiny");
    const jobs: JobRequest[] = [];
    const slots = createSlotGate({ total: 2 });
    const consumer = await bus.consumeJobs({
      labels: ["tiny"],
      slots,
      pollIntervalMs: 50,
      onJob: async (job, delivery) => {
        jobs.push(job);
        await delivery.ack();
        slots.release(delivery.label);
      },
    });
    const events: bigint[] = [];
    const owner = await bus.consumeEvents({
      owner: "runner-a",
      onEvent: async (event) => {
        events.push(event.seq);
      },
    });

    cutConnection(models[0]);
    // Published while the bus is reconnecting: it waits for the new connection.
    const afterCut = makeJob("tiny");
    await bus.publishJob(afterCut);
    await bus.publishEvent(
      create(JobEventSchema, { schemaVersion: SCHEMA_VERSION, jobId: randomUUID(), attempt: 1, seq: 7n }),
      "runner-a",
    );

    const received = await eventually(() => jobs.find((job) => job.jobId === afterCut.jobId), 10_000);
    assert.equal(received.runsOn, "tiny");
    await eventually(() => (events.includes(7n) ? true : undefined), 10_000);
    assert.ok(models.length >= 2, "the bus opened a new connection");
    await eventually(() => (states.includes("connected") ? true : undefined));
    assert.deepEqual(states.slice(0, 2), ["disconnected", "connected"]);
    await consumer.stop();
    await owner.stop();
  } finally {
    await bus.deleteNamespace();
    await bus.close();
  }
});

test("a publish fails with BusUnavailableError when the broker stays unreachable past the deadline", {
  timeout: 20_000,
}, async () => {
  const namespace = uniqueNamespace();
  let refuse = false;
  const models: ChannelModel[] = [];
  const bus = await connectBus({
    url: AMQP_URL,
    namespace,
    log: testLog,
    publishTimeoutMs: 600,
    reconnect: { initialDelayMs: 50, maxDelayMs: 100 },
    connect: async (url, socketOptions) => {
      if (refuse) throw new Error("connection refused (simulated)");
      const model = await amqp.connect(url, socketOptions);
      models.push(model);
      return model;
    },
  });
  try {
    await bus.declareTopology();
    await bus.ensureLabelQueue("tiny");
    refuse = true;
    cutConnection(models[0]);
    const started = Date.now();
    await assert.rejects(bus.publishJob(makeJob("tiny")), (error: unknown) => {
      assert.ok(error instanceof BusUnavailableError);
      assert.equal(error.code, "bus_unavailable");
      assert.doesNotMatch(error.message, /guest:guest/);
      return true;
    });
    const waited = Date.now() - started;
    assert.ok(waited >= 500 && waited < 3_000, `waited ${waited} ms`);
    refuse = false;
    await eventually(() => (bus.connected ? true : undefined), 5_000);
  } finally {
    await bus.deleteNamespace();
    await bus.close();
  }
});

test("an event handled alone is acked within a moment: when the connection is cut after that, it does not come again", {
  timeout: 30_000,
}, async () => {
  const namespace = uniqueNamespace();
  const models: ChannelModel[] = [];
  const bus = await openBus(namespace, {
    connect: recordingConnect(models),
  });
  const event = (seq: bigint) =>
    create(JobEventSchema, { schemaVersion: SCHEMA_VERSION, jobId: randomUUID(), attempt: 1, seq });
  try {
    await bus.declareTopology();
    const events: bigint[] = [];
    const owner = await bus.consumeEvents({ owner: "runner-a", onEvent: async (e) => void events.push(e.seq) });
    await bus.publishEvent(event(1n), "runner-a");
    await eventually(() => (events.includes(1n) ? true : undefined));
    // Acks wait up to 50 ms for others to go with them; nothing else comes, so it goes alone.
    await new Promise((resolve) => setTimeout(resolve, 500));
    cutConnection(models[0]);
    await bus.publishEvent(event(2n), "runner-a");
    await eventually(() => (events.includes(2n) ? true : undefined), 10_000);
    await owner.stop();
    assert.deepEqual(events, [1n, 2n], "event 1 was acked before the cut, so it was not redelivered");
  } finally {
    await bus.deleteNamespace();
    await bus.close();
  }
});
