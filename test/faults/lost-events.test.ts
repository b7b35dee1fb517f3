import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { followOwnerEvents, type OwnerEvents, runFleetJob } from "@solstice/forge-relay";
import { create, type JobEvent, JobRequestSchema, Outcome } from "@solstice/protocol";
import { pino } from "pino";
import { startTestFleet, type TestFleet, tinyJob } from "../support/fleet.ts";

// An owner that lost a job's events (another process on its queue took them, or a broker outage
// ate them) retries the attempt once its lease runs out. The retry reaches a host while the job is
// already finished in the database: the host must answer with the recorded end, or the job hangs.
const LEASE_MS = 3_000;
let fleet: TestFleet;

before(async () => {
  fleet = await startTestFleet("tiny=1");
});
after(async () => {
  await fleet?.close();
});

test("an owner that dropped JobFinished gets the recorded result, outputs included, from the retried attempt (tiny guest, TCG)", {
  timeout: 300_000,
}, async (t) => {
  const owner = `${fleet.owner}-lossy`;
  const real = await followOwnerEvents(fleet.bus, owner);
  const dropped: JobEvent[] = [];
  // Everything reaches the job's follower except the first attempt's JobFinished.
  const lossy: OwnerEvents = {
    follow: (jobId, onEvent) =>
      real.follow(jobId, (event) => {
        if (event.body.case === "jobFinished" && event.attempt === 1) dropped.push(event);
        else onEvent(event);
      }),
    stop: () => real.stop(),
  };
  const base = tinyJob(owner, [{ name: "answer", run: 'echo "v=42" >> "$GITHUB_OUTPUT"' }]);
  const request = create(JobRequestSchema, {
    ...base,
    steps: base.steps.map((step) => ({ ...step, id: "answer" })),
    // An Actions expression, not a template literal.
    outputs: { v: ["$", "{{ steps.answer.outputs.v }}"].join("") },
  });
  const notices: string[] = [];
  const started = Date.now();
  try {
    const result = await runFleetJob({
      request,
      bus: fleet.bus,
      events: lossy,
      log: pino({ level: "silent" }),
      leaseMs: LEASE_MS,
      onEvent: () => {},
      onNotice: (text) => notices.push(text),
    });
    t.diagnostic(`ended after ${Date.now() - started} ms; notices: ${JSON.stringify(notices)}`);
    assert.equal(dropped.length, 1, "the first attempt's JobFinished was dropped");
    assert.ok(
      notices.some((n) => n.includes("retrying as attempt 2")),
      "the owner retried",
    );
    assert.equal(result.result, Outcome.SUCCESS);
    assert.deepEqual(result.outputs, { v: "42" });
    const record = await fleet.store.getJob(request.jobId);
    assert.equal(record?.state, "succeeded");
    assert.equal(record?.attempt, 1, "the answer came from the record: no second run");
  } finally {
    await real.stop();
  }
});
