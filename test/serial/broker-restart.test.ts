import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { LogStream, Outcome } from "@solstice/protocol";
import { startTestFleet, type TestFleet, tinyJob, waitForFirstStepRunning } from "../support/fleet.ts";
import { restartRabbitMq } from "../support/restart-service.ts";

// Runs alone (scripts/test.sh runs test/serial after everything else): it stops the machine's
// RabbitMQ, which every other test shares.
const LINES = 40;
let fleet: TestFleet;

before(async () => {
  // A lease long enough to outlast the restart: the host must keep the job, not cancel it.
  fleet = await startTestFleet("tiny=1", { env: { SOLSTICE_LEASE_MS: "120000" } });
});
after(async () => {
  await fleet?.close();
});

test("RabbitMQ restarted mid-job: the job finishes and every event arrives once, in order (tiny guest, TCG)", {
  timeout: 400_000,
}, async (t) => {
  const job = tinyJob(fleet.owner, [
    { name: "count", run: `for i in $(seq 1 ${LINES}); do echo "line $i"; sleep 0.5; done` },
  ]);
  const finished = fleet.runToEnd(job, 360_000);
  await waitForFirstStepRunning(fleet.store, job.jobId, 180_000);
  const { downMs } = await restartRabbitMq();
  t.diagnostic(`RabbitMQ was down for ${downMs} ms while the step ran`);

  const events = await finished;
  const seqs = events.map((e) => Number(e.seq)).sort((a, b) => a - b);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => i + 1),
    "events numbered 1..n with no gap and no duplicate",
  );
  const lines = events
    .sort((a, b) => Number(a.seq - b.seq))
    .flatMap((e) => (e.body.case === "log" ? e.body.value.lines : []))
    .filter((l) => l.stream === LogStream.STDOUT)
    .map((l) => l.text);
  assert.deepEqual(
    lines,
    Array.from({ length: LINES }, (_, i) => `line ${i + 1}`),
  );
  const end = events.find((e) => e.body.case === "jobFinished");
  assert.equal(end?.body.case === "jobFinished" && end.body.value.result, Outcome.SUCCESS);
  assert.equal((await fleet.store.getJob(job.jobId))?.state, "succeeded");
});
