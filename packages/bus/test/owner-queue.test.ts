import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { create, JobEventSchema, SCHEMA_VERSION } from "@solstice/protocol";
import type { ChannelModel } from "amqplib";
import { OwnerTakenError } from "../src/index.ts";
import { eventually, openBus, rawChannel, recordingConnect, uniqueNamespace } from "./bus-fixture.ts";

const event = (seq: bigint) =>
  create(JobEventSchema, { schemaVersion: SCHEMA_VERSION, jobId: randomUUID(), attempt: 1, seq });

test("a second consumer of one owner queue is refused with OwnerTakenError, also from another connection", {
  timeout: 20_000,
}, async () => {
  const namespace = uniqueNamespace();
  const first = await openBus(namespace);
  const second = await openBus(namespace);
  try {
    const got: bigint[] = [];
    const subscription = await first.consumeEvents({ owner: "github-1", onEvent: async (e) => void got.push(e.seq) });
    await assert.rejects(
      second.consumeEvents({ owner: "github-1", onEvent: async () => {} }),
      (error: unknown) =>
        error instanceof OwnerTakenError && error.owner === "github-1" && /SOLSTICE_OWNER/.test(error.hint ?? ""),
    );
    await first.publishEvent(event(1n), "github-1");
    await eventually(() => (got.includes(1n) ? true : undefined));
    // Once the first one stops, the owner is free for the next (a restarted runner).
    await subscription.stop();
    const again = await second.consumeEvents({ owner: "github-1", onEvent: async () => {} });
    await again.stop();
  } finally {
    await first.deleteNamespace();
    await Promise.all([first.close(), second.close()]);
  }
});

test("an owner queue keeps what was published while its owner restarts, and expires once no owner comes back", {
  timeout: 30_000,
}, async () => {
  const namespace = uniqueNamespace();
  const bus = await openBus(namespace, { ownerQueueExpiryMs: 2_000 });
  const { channel, connection } = await rawChannel();
  channel.on("error", () => {});
  try {
    const first = await bus.consumeEvents({ owner: "jit-7", onEvent: async () => {} });
    await first.stop();
    await bus.publishEvent(event(5n), "jit-7");
    const got: bigint[] = [];
    const restarted = await bus.consumeEvents({ owner: "jit-7", onEvent: async (e) => void got.push(e.seq) });
    await eventually(() => (got.includes(5n) ? true : undefined));
    await restarted.stop();
    const stoppedAt = Date.now();
    await eventually(async () => {
      const probe = await connection.createChannel();
      probe.on("error", () => {});
      try {
        await probe.checkQueue(`${namespace}.events.jit-7`);
        await probe.close();
        return undefined;
      } catch {
        return true;
      }
    }, 20_000);
    assert.ok(Date.now() - stoppedAt >= 1_500, "not before its expiry");
  } finally {
    await connection.close();
    await bus.deleteNamespace();
    await bus.close();
  }
});

test("after a lost connection the owner's consumer comes back and gets the events published meanwhile", {
  timeout: 30_000,
}, async () => {
  const namespace = uniqueNamespace();
  const models: ChannelModel[] = [];
  const bus = await openBus(namespace, {
    connect: recordingConnect(models),
    // The first reconnect comes late, so the publishes below land while this owner is away.
    reconnect: { initialDelayMs: 1_500, maxDelayMs: 1_500 },
  });
  const other = await openBus(namespace);
  try {
    const got: bigint[] = [];
    const subscription = await bus.consumeEvents({ owner: "ciadm-x", onEvent: async (e) => void got.push(e.seq) });
    const [model] = models;
    assert.ok(model);
    const socket = (model.connection as unknown as { stream: { destroy(error: Error): void } }).stream;
    socket.destroy(new Error("cut (simulated)"));
    for (const seq of [1n, 2n, 3n]) await other.publishEvent(event(seq), "ciadm-x");
    await eventually(() => (got.length === 3 ? true : undefined), 15_000);
    assert.deepEqual(got, [1n, 2n, 3n]);
    assert.ok(models.length >= 2);
    await subscription.stop();
  } finally {
    await other.deleteNamespace();
    await Promise.all([bus.close(), other.close()]);
  }
});

test("every event an owner handled is acked, in batches or not: its restart gets only the one whose handler failed", {
  timeout: 30_000,
}, async () => {
  const namespace = uniqueNamespace();
  const bus = await openBus(namespace);
  const { channel, connection } = await rawChannel();
  try {
    const handled: bigint[] = [];
    const first = await bus.consumeEvents({
      owner: "burst-1",
      prefetch: 64,
      onEvent: async (e) => {
        // One handler fails: it is put back behind the others, which are acked before it.
        if (e.seq === 150n && !handled.includes(150n)) {
          handled.push(e.seq);
          throw new Error("the forge is away");
        }
        handled.push(e.seq);
      },
    });
    // Published at once, so deliveries queue up behind each other and their acks are batched.
    await Promise.all(Array.from({ length: 300 }, (_, i) => bus.publishEvent(event(BigInt(i + 1)), "burst-1")));
    await eventually(() => (handled.length === 301 ? true : undefined), 20_000);
    await first.stop();
    const { messageCount } = await channel.checkQueue(`${namespace}.events.burst-1`);
    assert.equal(messageCount, 0, "nothing handled stays in the owner's queue");
    const again: bigint[] = [];
    const restarted = await bus.consumeEvents({ owner: "burst-1", onEvent: async (e) => void again.push(e.seq) });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await restarted.stop();
    assert.deepEqual(again, [], "a restarted owner gets nothing handled again");
    assert.equal(handled.filter((seq) => seq === 150n).length, 2, "the failed event came back once");
  } finally {
    await bus.deleteNamespace();
    await bus.close();
    await connection.close();
  }
});
