import assert from "node:assert/strict";
import { describe, mock, test } from "node:test";
import { Backoff, sleep } from "@solstice/forge-relay";

// The retry policy the runner applies to a failing forge (FetchTask, Declare, the reports):
// exponential from the first delay, capped, with ±20 % jitter so runners never retry in step.

function delays(backoff: Backoff, count: number, random: number): number[] {
  const spy = mock.method(Math, "random", () => random);
  try {
    return Array.from({ length: count }, () => backoff.next());
  } finally {
    spy.mock.restore();
  }
}

describe("the forge retry backoff", () => {
  test("doubles from the first delay up to the cap and stays there", () => {
    assert.deepEqual(delays(new Backoff(100, 1000), 7, 0.5), [100, 200, 400, 800, 1000, 1000, 1000]);
  });

  test("jitters each delay within ±20 %", () => {
    assert.deepEqual(delays(new Backoff(100, 1000), 5, 0), [80, 160, 320, 640, 800]);
    assert.deepEqual(delays(new Backoff(100, 1000), 5, 0.999_999), [120, 240, 480, 960, 1200]);
  });

  test("never exceeds the cap plus its jitter, however long the forge is away", () => {
    const backoff = new Backoff(500, 60_000);
    for (const delay of delays(backoff, 200, 0.999_999)) assert.ok(delay <= 72_000, `${delay} ms`);
  });

  test("starts over from the first delay after a success", () => {
    const backoff = new Backoff(100, 1000);
    delays(backoff, 4, 0.5);
    backoff.reset();
    assert.deepEqual(delays(backoff, 2, 0.5), [100, 200]);
  });

  test("a pause ends at once when its signal aborts", async () => {
    const stop = new AbortController();
    const started = Date.now();
    const paused = sleep(60_000, stop.signal);
    stop.abort();
    await paused;
    assert.ok(Date.now() - started < 1000);
  });
});
