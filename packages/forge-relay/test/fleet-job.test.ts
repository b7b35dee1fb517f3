import assert from "node:assert/strict";
import { test } from "node:test";
import { UnroutableLabelError } from "@solstice/bus";
import {
  type Control,
  create,
  type JobEvent,
  JobEventSchema,
  type JobRequest,
  JobRequestSchema,
  type MessageInitShape,
  Outcome,
  SCHEMA_VERSION,
} from "@solstice/protocol";
import { pino } from "pino";
import { type OwnerEvents, runFleetJob } from "../src/index.ts";

const log = pino({ level: "silent" });

function request(): JobRequest {
  return create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: "job-1",
    attempt: 1,
    owner: "o",
    runsOn: "tiny",
  });
}

/** An in-memory stand-in for the bus and the owner subscription: records publishes, delivers events on demand. */
function fakeFleet(publishError?: Error) {
  const published: JobRequest[] = [];
  const controls: Control[] = [];
  let handler: ((e: JobEvent) => void) | undefined;
  const events: OwnerEvents = {
    follow: (_jobId, onEvent) => {
      handler = onEvent;
      return () => {
        handler = undefined;
      };
    },
    stop: async () => {},
  };
  const bus = {
    publishJob: async (job: JobRequest) => {
      if (publishError) throw publishError;
      published.push(job);
    },
    publishControl: async (control: Control) => {
      controls.push(control);
    },
  };
  const send = (attempt: number, seq: number, body: MessageInitShape<typeof JobEventSchema>["body"]) =>
    handler?.(
      create(JobEventSchema, { schemaVersion: SCHEMA_VERSION, jobId: "job-1", attempt, seq: BigInt(seq), body }),
    );
  return { bus, events, published, controls, send };
}

test("events reach the caller in seq order, once each, and JobFinished ends the job", async () => {
  const fleet = fakeFleet();
  const seen: string[] = [];
  const done = runFleetJob({
    request: request(),
    bus: fleet.bus,
    events: fleet.events,
    log,
    onEvent: (e) => seen.push(`${e.seq}:${e.body.case}`),
    onNotice: () => {},
  });
  await new Promise((r) => setImmediate(r));
  fleet.send(1, 2, { case: "stepStarted", value: { index: 0 } });
  fleet.send(1, 1, { case: "accepted", value: { host: "h" } });
  fleet.send(1, 1, { case: "accepted", value: { host: "h" } });
  fleet.send(1, 3, { case: "jobFinished", value: { result: Outcome.SUCCESS, outputs: { a: "1" } } });
  const result = await done;
  assert.deepEqual(seen, ["1:accepted", "2:stepStarted", "3:jobFinished"]);
  assert.equal(result.result, Outcome.SUCCESS);
  assert.deepEqual(result.outputs, { a: "1" });
  assert.equal(result.accepted, true);
});

test("an accepted attempt that goes silent is fenced with a Cancel and republished as the next attempt", async () => {
  const fleet = fakeFleet();
  const notices: string[] = [];
  const done = runFleetJob({
    request: request(),
    bus: fleet.bus,
    events: fleet.events,
    log,
    leaseMs: 100,
    onEvent: () => {},
    onNotice: (n) => notices.push(n),
  });
  await new Promise((r) => setImmediate(r));
  fleet.send(1, 1, { case: "accepted", value: { host: "lost-host" } });
  await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual(
    fleet.published.map((j) => j.attempt),
    [1, 2],
  );
  assert.equal(fleet.controls[0]?.command.case === "cancel" ? fleet.controls[0].command.value.attempt : 0, 1);
  assert.match(notices.join("\n"), /retrying as attempt 2/);
  fleet.send(1, 2, { case: "jobFinished", value: { result: Outcome.SUCCESS } });
  fleet.send(2, 1, { case: "accepted", value: { host: "h2" } });
  fleet.send(2, 2, { case: "jobFinished", value: { result: Outcome.FAILURE, reason: "boom" } });
  const result = await done;
  assert.equal(result.result, Outcome.FAILURE, "the old attempt's late end is ignored");
  assert.equal(result.reason, "boom");
});

test("a job no host accepts in time fails with the label named, and is cancelled", async () => {
  const fleet = fakeFleet();
  const result = await runFleetJob({
    request: request(),
    bus: fleet.bus,
    events: fleet.events,
    log,
    queueTimeoutMs: 100,
    onEvent: () => {},
    onNotice: () => {},
  });
  assert.equal(result.result, Outcome.FAILURE);
  assert.match(result.reason, /no host serving "tiny" took the job within 0 s/);
  assert.equal(result.accepted, false);
  assert.equal(fleet.controls.length, 1);
});

test("aborting sends Control.Cancel and waits for the job's end, or gives up after the grace", async () => {
  const fleet = fakeFleet();
  const abort = new AbortController();
  const done = runFleetJob({
    request: request(),
    bus: fleet.bus,
    events: fleet.events,
    log,
    cancelGraceMs: 100,
    signal: abort.signal,
    onEvent: () => {},
    onNotice: () => {},
  });
  await new Promise((r) => setImmediate(r));
  fleet.send(1, 1, { case: "accepted", value: { host: "h" } });
  abort.abort(new Error("cancelled in the forge"));
  const result = await done;
  assert.equal(result.result, Outcome.CANCELLED);
  const cancel = fleet.controls[0]?.command;
  assert.equal(cancel?.case === "cancel" ? cancel.value.reason : "", "cancelled in the forge");
});

test("a label nobody serves fails the job at once with the bus's explanation", async () => {
  const fleet = fakeFleet(new UnroutableLabelError("tiny", ["debian-12"]));
  const result = await runFleetJob({
    request: request(),
    bus: fleet.bus,
    events: fleet.events,
    log,
    onEvent: () => {},
    onNotice: () => {},
  });
  assert.equal(result.result, Outcome.FAILURE);
  assert.match(result.reason, /tiny/);
});
