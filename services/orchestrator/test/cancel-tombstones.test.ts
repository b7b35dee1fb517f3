import assert from "node:assert/strict";
import { test } from "node:test";
import { CancelTombstones } from "../src/cancel-tombstones.ts";

test("cancel tombstones: per attempt or all attempts, bounded in number and in age", () => {
  let now = 0;
  const tombstones = new CancelTombstones(2, 1_000, () => now);
  tombstones.remember("a", 2, "only attempt 2");
  tombstones.remember("b", 0, "every attempt");
  assert.equal(tombstones.reasonFor("a", 1), undefined);
  assert.equal(tombstones.reasonFor("a", 2), "only attempt 2");
  assert.equal(tombstones.reasonFor("b", 7), "every attempt");
  tombstones.remember("c", 0, "third");
  assert.equal(tombstones.reasonFor("a", 2), undefined, "the oldest goes when full");
  now = 1_001;
  assert.equal(tombstones.reasonFor("c", 1), undefined, "and any after a day (here 1 s)");
});
