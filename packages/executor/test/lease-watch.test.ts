import assert from "node:assert/strict";
import { describe, mock, test } from "node:test";
import { create, type JobEvent, JobEventSchema, type JobRequest, JobRequestSchema } from "@solstice/protocol";
import { pino } from "pino";
import { LeaseWatch } from "../src/lease-watch.ts";

const job = create(JobRequestSchema, { jobId: "00000000-0000-4000-8000-000000000001", attempt: 1, runsOn: "tiny" });
const event = (attempt: number, seq: number, kind: "accepted" | "heartbeat" | "jobFinished"): JobEvent =>
  create(JobEventSchema, {
    jobId: job.jobId,
    attempt,
    seq: BigInt(seq),
    body:
      kind === "accepted"
        ? { case: "accepted", value: { host: "h" } }
        : kind === "heartbeat"
          ? { case: "heartbeat", value: {} }
          : { case: "jobFinished", value: { result: 1, reason: "" } },
  });

function watch(maxAttempts = 3) {
  const published: number[] = [];
  const cancelled: number[] = [];
  const lost: [number, number | undefined][] = [];
  const lease = new LeaseWatch({
    request: job,
    leaseMs: 10_000,
    maxAttempts,
    log: pino({ level: "silent" }),
    publish: async (r: JobRequest) => {
      published.push(r.attempt);
    },
    cancel: async (_id, attempt) => {
      cancelled.push(attempt);
    },
    onLost: (attempt, next) => lost.push([attempt, next]),
  });
  return { lease, published, cancelled, lost };
}

describe("the owner's lease on a job attempt", () => {
  test("three missed heartbeats of the host Accepted announced are told at once, long before the lease", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const silent: [number, number, number][] = [];
      const lease = new LeaseWatch({
        request: job,
        leaseMs: 60_000,
        log: pino({ level: "silent" }),
        publish: async () => {},
        cancel: async () => {},
        onLost: () => {},
        onSilent: (attempt, silentMs, heartbeatMs) => silent.push([attempt, silentMs, heartbeatMs]),
      });
      await lease.start();
      const accepted = create(JobEventSchema, {
        jobId: job.jobId,
        attempt: 1,
        seq: 1n,
        body: { case: "accepted", value: { host: "h", heartbeatIntervalMs: 5_000, leaseMs: 60_000 } },
      });
      assert.ok(lease.observe(accepted));
      mock.timers.tick(14_000);
      assert.ok(lease.observe(event(1, 2, "heartbeat")));
      mock.timers.tick(14_999);
      assert.deepEqual(silent, [], "a heartbeat resets the silence");
      mock.timers.tick(1);
      assert.deepEqual(silent, [[1, 15_000, 5_000]], "told after three missed heartbeats, once");
      mock.timers.tick(30_000);
      assert.equal(silent.length, 1);
    } finally {
      mock.timers.reset();
    }
  });

  test("events keep an attempt alive; silence for the lease time cancels it and publishes the next attempt", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const { lease, published, cancelled, lost } = watch();
      await lease.start();
      assert.ok(lease.observe(event(1, 1, "accepted")));
      mock.timers.tick(9_000);
      assert.ok(lease.observe(event(1, 2, "heartbeat")));
      mock.timers.tick(9_000);
      assert.deepEqual(lost, [], "each event renews the lease");
      mock.timers.tick(1_001);
      assert.deepEqual(cancelled, [1], "the silent attempt is fenced");
      assert.deepEqual(lost, [[1, 2]]);
      assert.deepEqual(published, [1, 2]);
      assert.equal(lease.attempt, 2);
      assert.equal(lease.observe(event(1, 3, "heartbeat")), false, "a late event of attempt 1 is ignored");
      assert.ok(lease.observe(event(2, 1, "accepted")));
      assert.ok(lease.observe(event(2, 2, "jobFinished")));
      mock.timers.tick(60_000);
      assert.deepEqual(lost, [[1, 2]], "a finished job is no longer watched");
    } finally {
      mock.timers.reset();
    }
  });

  test("a lost last attempt fails the job instead of retrying", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const { lease, published, lost } = watch(2);
      await lease.start();
      lease.observe(event(1, 1, "accepted"));
      mock.timers.tick(10_001);
      lease.observe(event(2, 1, "accepted"));
      mock.timers.tick(10_001);
      assert.deepEqual(published, [1, 2]);
      assert.deepEqual(lost, [
        [1, 2],
        [2, undefined],
      ]);
    } finally {
      mock.timers.reset();
    }
  });

  test("no lease runs while the job waits in the queue", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const { lease, lost } = watch();
      await lease.start();
      mock.timers.tick(600_000);
      assert.deepEqual(lost, [], "queue time is bounded by the queue timeout, not the lease");
    } finally {
      mock.timers.reset();
    }
  });
});
