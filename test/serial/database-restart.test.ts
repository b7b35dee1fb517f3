import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Outcome } from "@solstice/protocol";
import { startTestFleet, type TestFleet, tinyJob, waitForFirstStepRunning } from "../support/fleet.ts";
import { restartPostgres } from "../support/restart-service.ts";

// Runs alone (scripts/test.sh runs test/serial after everything else): it restarts the machine's
// PostgreSQL, which every other test shares.
let fleet: TestFleet;

before(async () => {
  fleet = await startTestFleet("tiny=1");
});
after(async () => {
  await fleet?.close();
});

const resultOf = (events: Awaited<ReturnType<TestFleet["runToEnd"]>>) => {
  const end = events.find((e) => e.body.case === "jobFinished");
  return end?.body.case === "jobFinished" ? end.body.value.result : undefined;
};

test("PostgreSQL restarted mid-job: the services recover without a restart and record every job (tiny guest, TCG)", {
  timeout: 400_000,
}, async (t) => {
  const first = tinyJob(fleet.owner, [{ name: "slow", run: "echo before; sleep 15; echo after" }]);
  const finished = fleet.runToEnd(first, 240_000);
  await waitForFirstStepRunning(fleet.store, first.jobId, 180_000);
  const { downMs } = await restartPostgres();
  t.diagnostic(`PostgreSQL was down for ${downMs} ms while the step ran`);
  assert.equal(resultOf(await finished), Outcome.SUCCESS);

  // The same orchestrator process, never restarted, takes and records a new job.
  const second = tinyJob(fleet.owner, [{ name: "after", run: "echo recovered" }]);
  assert.equal(resultOf(await fleet.runToEnd(second, 240_000)), Outcome.SUCCESS);
  for (const job of [first, second]) {
    const row = await fleet.store.getJob(job.jobId);
    assert.equal(row?.state, "succeeded", `job ${job.jobId} recorded as succeeded`);
    assert.equal(row?.steps[0]?.state, "succeeded");
  }
});
