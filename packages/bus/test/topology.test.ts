import assert from "node:assert/strict";
import { test } from "node:test";
import { TopologyMismatchError } from "../src/index.ts";
import { openBus, uniqueNamespace, withLabelQueues } from "./bus-fixture.ts";

test("declaring the topology and a label queue twice succeeds and leaves a quorum queue", {
  timeout: 20_000,
}, async () => {
  await withLabelQueues(["debian-12"], async ({ bus, namespace, raw }) => {
    await bus.declareTopology();
    await bus.ensureLabelQueue("debian-12");
    const queue = await raw.channel.checkQueue(`${namespace}.jobs.v1.debian-12`);
    assert.equal(queue.messageCount, 0);
    // Declaring it as a classic queue is refused only because it is a quorum queue.
    const probe = await raw.connection.createChannel();
    probe.on("error", () => {});
    const ours = {
      "x-delivery-limit": 5,
      "x-dead-letter-exchange": `${namespace}.dlx`,
      "x-dead-letter-strategy": "at-least-once",
      "x-overflow": "reject-publish",
      "x-max-length": 10_000,
    };
    await probe.assertQueue(`${namespace}.jobs.v1.debian-12`, {
      durable: true,
      arguments: { ...ours, "x-queue-type": "quorum" },
    });
    await assert.rejects(
      probe.assertQueue(`${namespace}.jobs.v1.debian-12`, {
        durable: true,
        arguments: { ...ours, "x-queue-type": "classic" },
      }),
      /x-queue-type/,
    );
    await raw.channel.checkQueue(`${namespace}.dlq`);
    await raw.channel.checkExchange(`${namespace}.events`);
  });
});

test("a label queue declared again with another delivery limit fails with TopologyMismatchError", {
  timeout: 20_000,
}, async () => {
  const namespace = uniqueNamespace();
  const bus = await openBus(namespace);
  const other = await openBus(namespace, { deliveryLimit: 3 });
  try {
    await bus.declareTopology();
    await bus.ensureLabelQueue("tiny");
    await assert.rejects(other.ensureLabelQueue("tiny"), (error: unknown) => {
      assert.ok(error instanceof TopologyMismatchError);
      assert.equal(error.code, "topology_mismatch");
      assert.match(error.message, new RegExp(`${namespace}\\.jobs\\.v1\\.tiny`));
      assert.match(error.message, /x-delivery-limit/);
      return true;
    });
    // The refusal closed only a declaration channel: the bus still works.
    await other.ensureLabelQueue("other");
  } finally {
    await other.deleteNamespace();
    await bus.deleteNamespace();
    await other.close();
    await bus.close();
  }
});
