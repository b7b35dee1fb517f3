import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { ControlSchema, create, LogStream, Outcome, SCHEMA_VERSION } from "@solstice/protocol";
import { startTestFleet, type TestFleet, tinyJob, waitForFirstStepRunning } from "./support/fleet.ts";
import { assertStartedInMode, logLines, START_MODE_TITLE } from "./support/start-mode.ts";

let fleet: TestFleet;
before(async () => {
  fleet = await startTestFleet("tiny=1");
});
after(async () => {
  await fleet?.close();
});

test(`a job cancelled by a person still runs its always() and cancelled() steps, as on GitHub, and ends cancelled (tiny guest, TCG, ${START_MODE_TITLE})`, {
  timeout: 240_000,
}, async () => {
  const job = tinyJob(fleet.owner, [
    { name: "long", run: "sleep 120; echo not-reached" },
    // The job's setup (event payload, tool cache) is in place even though the step that was to
    // carry it in a warm or restored VM was cancelled.
    {
      name: "cleanup",
      run: 'test -f "$GITHUB_EVENT_PATH" && test -d "$RUNNER_TOOL_CACHE" && echo cleanup-ran',
      condition: "always()",
    },
    { name: "on cancel", run: "echo saw-cancel", condition: "cancelled()" },
    { name: "plain", run: "echo never" },
    { name: "on success", run: "echo never-either", condition: "success()" },
  ]);
  const done = fleet.runToEnd(job);
  await waitForFirstStepRunning(fleet.store, job.jobId);
  await fleet.bus.publishControl(
    create(ControlSchema, {
      schemaVersion: SCHEMA_VERSION,
      command: { case: "cancel", value: { jobId: job.jobId, attempt: 0, reason: "cancelled in the forge" } },
    }),
  );
  const events = await done;
  assertStartedInMode(logLines(events));
  const finished = new Map(
    events.flatMap((e) => (e.body.case === "stepFinished" ? [[e.body.value.index, e.body.value.outcome]] : [])),
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((i) => finished.get(i)),
    [Outcome.CANCELLED, Outcome.SUCCESS, Outcome.SUCCESS, Outcome.SKIPPED, Outcome.SKIPPED],
  );
  const lines = events
    .flatMap((e) => (e.body.case === "log" ? e.body.value.lines : []))
    .filter((l) => l.stream === LogStream.STDOUT)
    .map((l) => l.text);
  assert.deepEqual(lines, ["cleanup-ran", "saw-cancel"]);
  const end = events.find((e) => e.body.case === "jobFinished");
  assert.equal(end?.body.case === "jobFinished" && end.body.value.result, Outcome.CANCELLED);
  assert.equal(end?.body.case === "jobFinished" && end.body.value.reason, "cancelled in the forge");
});
