import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Result } from "@solstice/forgejo-runner";
import { FleetKeyring, generateFleetKey, parseFleetKeys } from "@solstice/protocol";
import { pino } from "pino";
import { type FakeForgejo, startFakeForgejo } from "./fakes/forgejo/fake-forgejo.ts";
import { startTestFleet, type TestFleet } from "./support/fleet.ts";
import { type RunningRunner, startRegisteredRunner } from "./support/forgejo-daemon.ts";

// The forge goes away for 25 s in the middle of a job (nothing listens on its port), then comes
// back. The job runs on; its rows wait in the runner and reach the forge afterwards, every one,
// in order, once. While the forge is away the runner retries with capped exponential backoff, and
// pings the forge every couple of seconds: once it answers, the live log resumes at once, not
// when a back-off of up to the default minute runs out.

const OUTAGE_MS = 25_000;
// The default: when the forge comes back the runner is some 5-20 s into a back-off.
const MAX_BACKOFF_MS = 60_000;
const LINES = 90;
const WORKFLOW = `name: ci
jobs:
  count:
    name: count
    runs-on: solstice-tiny
    steps:
      - name: count
        run: for i in $(seq 1 ${LINES}); do echo line-$i; sleep 0.5; done
`;

let forge: FakeForgejo;
let fleet: TestFleet;
let runner: RunningRunner | undefined;
const warnings: { msg: string; retry_in_ms?: number; time: number }[] = [];
const log = pino({ level: "warn" }, { write: (line: string) => warnings.push(JSON.parse(line)) });
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("outagetest")));

before(async () => {
  forge = await startFakeForgejo();
  fleet = await startTestFleet("tiny=1", { keyring });
  runner = await startRegisteredRunner({
    forge,
    name: "outage",
    bus: fleet.bus,
    namespace: fleet.namespace,
    keyring,
    log,
    config: {
      fetchIntervalMs: 200,
      reportIntervalMs: 300,
      maxBackoffMs: MAX_BACKOFF_MS,
      callTimeoutMs: 5_000,
    },
  });
});
after(async () => {
  await runner?.stop(5000);
  await fleet?.close();
  await forge?.close();
});

test("the forge away for 25 s mid-job loses no log row (every row once, in order, the right result) and the live log resumes within seconds of its return", {
  timeout: 300_000,
}, async (t) => {
  const jobId = forge.queueJob({ workflow: WORKFLOW });
  await forge.waitFor(
    () => forge.taskOfJob(jobId)?.log.some((l) => l.content === "line-5") === true,
    180_000,
    "the first rows of the job",
  );
  const task = forge.taskOfJob(jobId);
  assert.ok(task);
  const awayAt = Date.now();
  forge.goAway("refuse");
  await new Promise((r) => setTimeout(r, OUTAGE_MS));
  const backAt = Date.now();
  await forge.comeBack();
  await forge.waitFor(() => task.result !== Result.UNSPECIFIED, 120_000, "the task's result");
  await forge.waitFor(() => task.logArchived, 30_000, "the final log");

  const lines = task.log.map((l) => l.content);
  const step = task.steps[0];
  assert.ok(step);
  const range = lines.slice(Number(step.logIndex), Number(step.logIndex + step.logLength));
  assert.deepEqual(
    range,
    Array.from({ length: LINES }, (_, i) => `line-${i + 1}`),
    "the step's rows, all there, in order, once",
  );
  for (let i = 1; i <= LINES; i++) {
    assert.equal(lines.filter((l) => l === `line-${i}`).length, 1, `line-${i} is stored exactly once`);
  }
  assert.equal(task.result, Result.SUCCESS);
  assert.equal(step.result, Result.SUCCESS);

  // The forge really was away, and the job went on meanwhile: rows made then arrived afterwards.
  const duringOutage = forge.calls.filter((c) => c.at.getTime() > awayAt + 500 && c.at.getTime() < backAt);
  assert.deepEqual(duringOutage, [], "no request reached the forge while it was away");
  const madeMeanwhile = task.log.filter((l) => l.time.getTime() > awayAt && l.time.getTime() < backAt).length;
  assert.ok(madeMeanwhile >= 30, `${madeMeanwhile} rows were produced while the forge was away`);

  // Capped exponential backoff: few retries, growing, never beyond the cap and its jitter.
  const retries = warnings
    .filter((w) => w.msg === "report to the forge failed" && w.time >= awayAt && w.time <= backAt)
    .map((w) => w.retry_in_ms ?? 0);
  t.diagnostic(`retries while away: ${retries.join(", ")} ms`);
  assert.ok(retries.length >= 4 && retries.length <= 20, `${retries.length} retries in 30 s`);
  assert.ok(
    retries.every((ms) => ms <= MAX_BACKOFF_MS * 1.2),
    "each delay within the cap",
  );
  assert.ok((retries.at(-1) ?? 0) >= 5_000, "the delays grew");
  assert.ok((retries[0] ?? 0) < 1000, "the first retry comes soon");
  const nextLog = forge.calls.find((c) => c.at.getTime() >= backAt && c.procedure.endsWith("/UpdateLog"));
  assert.ok(nextLog, "the runner came back to the forge");
  const resumedMs = nextLog.at.getTime() - backAt;
  t.diagnostic(`the next UpdateLog came ${resumedMs} ms after the forge was back`);
  assert.ok(resumedMs <= 4_000, `the live log resumed within seconds, not after the back-off (${resumedMs} ms)`);
});
