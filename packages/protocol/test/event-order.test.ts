import assert from "node:assert/strict";
import { test } from "node:test";
import { create, EventOrder, JobEventSchema, SCHEMA_VERSION } from "../src/index.ts";

const event = (seq: number) =>
  create(JobEventSchema, { schemaVersion: SCHEMA_VERSION, jobId: "j", attempt: 1, seq: BigInt(seq) });
const seqs = (events: { seq: bigint }[]) => events.map((e) => Number(e.seq));

test("events arriving out of order are delivered in seq order", () => {
  const order = new EventOrder();
  assert.deepEqual(seqs(order.push(event(2))), []);
  assert.deepEqual(seqs(order.push(event(1))), [1, 2]);
  assert.deepEqual(seqs(order.push(event(3))), [3]);
});

test("a duplicate event is dropped", () => {
  const order = new EventOrder();
  order.push(event(1));
  assert.deepEqual(seqs(order.push(event(1))), []);
  assert.equal(order.expected, 2n);
});

test("a lost event stops blocking once the pending bound is reached", () => {
  const order = new EventOrder(2);
  assert.deepEqual(seqs(order.push(event(2))), []);
  assert.deepEqual(seqs(order.push(event(3))), []);
  assert.deepEqual(seqs(order.push(event(4))), [2, 3, 4]);
});
