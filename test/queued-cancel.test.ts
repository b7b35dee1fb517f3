import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ControlSchema, create, Outcome, SCHEMA_VERSION } from "@solstice/protocol";
import { startTestFleet, type TestFleet, tinyJob } from "./support/fleet.ts";

let fleet: TestFleet;
before(async () => {
  fleet = await startTestFleet("tiny=1");
});
after(async () => {
  await fleet?.close();
});

test("a job cancelled while it waits in the queue ends cancelled when a host takes it, and boots no VM (tiny guest, TCG)", {
  timeout: 240_000,
}, async () => {
  const first = tinyJob(fleet.owner, [{ name: "hold the only slot", run: "sleep 5" }]);
  const queued = tinyJob(fleet.owner, [{ name: "never", run: "echo must-not-run" }]);
  const firstDone = fleet.runToEnd(first);
  const queuedDone = fleet.runToEnd(queued);
  await fleet.bus.publishControl(
    create(ControlSchema, {
      schemaVersion: SCHEMA_VERSION,
      command: { case: "cancel", value: { jobId: queued.jobId, attempt: 0, reason: "cancelled in the forge" } },
    }),
  );

  const events = await queuedDone;
  const end = events.find((e) => e.body.case === "jobFinished");
  assert.equal(end?.body.case === "jobFinished" && end.body.value.result, Outcome.CANCELLED);
  assert.equal(
    end?.body.case === "jobFinished" && end.body.value.reason,
    "cancelled before it started: cancelled in the forge",
  );
  assert.ok(!events.some((e) => e.body.case === "stepStarted"), "no step of the cancelled job ran");
  assert.equal((await fleet.store.getJob(queued.jobId))?.state, "cancelled");

  const firstEnd = (await firstDone).find((e) => e.body.case === "jobFinished");
  assert.equal(firstEnd?.body.case === "jobFinished" && firstEnd.body.value.result, Outcome.SUCCESS);
});
