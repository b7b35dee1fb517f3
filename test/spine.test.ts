import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create, encodeMessage, type JobEvent, JobRequestSchema, Outcome } from "@solstice/protocol";
import amqp from "amqplib";
import { runCiadm } from "./support/ciadm.ts";
import { AMQP_URL, leftovers, startTestFleet, type TestFleet, tinyJob } from "./support/fleet.ts";
import { START_MODE, START_MODE_TITLE, TEST_LABEL } from "./support/start-mode.ts";

/** The bodies of a job's events, in the order the owner received them. */
const kinds = (events: JobEvent[]) => events.map((e) => e.body.case).filter((k) => k !== "heartbeat" && k !== "log");
const output = (events: JobEvent[]) =>
  events.flatMap((e) => (e.body.case === "log" ? e.body.value.lines.map((l) => l.text) : []));
const finished = (events: JobEvent[]) => {
  const last = events.at(-1);
  assert.equal(last?.body.case, "jobFinished");
  return last.body.value;
};

describe(`a job published on the bus runs in a VM of its own (TCG on this machine, ${START_MODE_TITLE})`, {
  timeout: 600_000,
}, () => {
  let fleet: TestFleet;
  before(async () => {
    fleet = await startTestFleet("tiny=2");
  });
  after(async () => {
    await fleet?.close();
  });

  test("the owner receives Accepted, step events and JobFinished in order with gap-free seq, and the row ends succeeded", async () => {
    const job = tinyJob(fleet.owner, [
      { name: "greet", run: 'echo "hello from $(uname -s)"; echo to-stderr >&2' },
      { name: "second", run: "echo second" },
    ]);
    const events = await fleet.runToEnd(job);
    assert.deepEqual(
      events.map((e) => Number(e.seq)),
      events.map((_, i) => i + 1),
      "seq runs 1, 2, 3… with no gap",
    );
    assert.deepEqual(kinds(events), [
      "accepted",
      "stepStarted",
      "stepFinished",
      "stepStarted",
      "stepFinished",
      "jobFinished",
    ]);
    assert.ok(output(events).includes("hello from Linux"));
    assert.ok(output(events).includes("to-stderr"));
    assert.equal(finished(events).result, Outcome.SUCCESS);
    const row = await fleet.store.getJob(job.jobId);
    assert.equal(row?.state, "succeeded");
    assert.deepEqual(
      row?.steps.map((s) => [s.name, s.state, s.exitCode]),
      [
        ["greet", "succeeded", 0],
        ["second", "succeeded", 0],
      ],
    );
  });

  test("a failing step fails the job and skips the rest, while continue-on-error lets it go on", async () => {
    const job = tinyJob(fleet.owner, [
      { name: "tolerated", run: "exit 3", continueOnError: true },
      { name: "breaks", run: "echo breaking; exit 7" },
      { name: "never", run: "echo should-not-run" },
      { name: "cleanup", run: "echo cleaning", condition: "always()" },
    ]);
    const events = await fleet.runToEnd(job);
    const result = finished(events);
    assert.equal(result.result, Outcome.FAILURE);
    assert.match(result.reason, /breaks/);
    assert.ok(!output(events).includes("should-not-run"));
    assert.ok(output(events).includes("cleaning"), "always() steps still run");
    const row = await fleet.store.getJob(job.jobId);
    assert.equal(row?.state, "failed");
    assert.deepEqual(
      row?.steps.map((s) => [s.name, s.state, s.conclusion, s.exitCode]),
      [
        ["tolerated", "failed", "succeeded", 3],
        ["breaks", "failed", "failed", 7],
        ["never", "skipped", "skipped", null],
        ["cleanup", "succeeded", "succeeded", 0],
      ],
    );
  });

  test("timeout-minutes stops a step that runs too long", async () => {
    const job = tinyJob(fleet.owner, [
      { name: "sleeps", run: "echo start; sleep 300; echo not-reached", timeoutSeconds: 3 },
      { name: "after", run: "echo after" },
    ]);
    const started = Date.now();
    const events = await fleet.runToEnd(job);
    assert.ok(Date.now() - started < 120_000, "the job did not wait for the sleep");
    const stepEnd = events.find((e) => e.body.case === "stepFinished" && e.body.value.index === 0);
    assert.equal(stepEnd?.body.case, "stepFinished");
    assert.match(stepEnd.body.value.reason, /timed out/);
    assert.equal(finished(events).result, Outcome.FAILURE);
    assert.ok(!output(events).includes("not-reached"));
  });

  test("garbage and an unknown major version go to the dead-letter queue while the orchestrator goes on", async () => {
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    const queue = `${fleet.namespace}.jobs.v1.${TEST_LABEL}`;
    channel.sendToQueue(queue, Buffer.from("this is not protobuf"), {
      persistent: true,
      type: "solstice.v1.JobRequest",
    });
    const future = create(JobRequestSchema, { ...tinyJob(fleet.owner, []), schemaVersion: "9.0" });
    channel.sendToQueue(queue, Buffer.from(encodeMessage(JobRequestSchema, future)), {
      persistent: true,
      type: "solstice.v1.JobRequest",
    });
    await channel.waitForConfirms();

    const events = await fleet.runToEnd(tinyJob(fleet.owner, [{ name: "still works", run: "echo alive" }]));
    assert.equal(finished(events).result, Outcome.SUCCESS);

    const reasons: string[] = [];
    for (let i = 0; i < 50 && reasons.length < 2; i++) {
      const message = await channel.get(`${fleet.namespace}.dlq`, { noAck: true });
      if (message) reasons.push(String(message.properties.headers?.["x-solstice-reason"]));
      else await new Promise((r) => setTimeout(r, 100));
    }
    await connection.close();
    assert.equal(reasons.length, 2, `two dead letters, got: ${reasons.join(" | ")}`);
    assert.ok(
      reasons.some((r) => /not a solstice\.v1\.JobRequest/i.test(r)),
      reasons.join(" | "),
    );
    assert.ok(
      reasons.some((r) => r.includes("9.0")),
      reasons.join(" | "),
    );
  });

  test("a job for a label no host serves fails at once, naming the label", async () => {
    const job = tinyJob(fleet.owner, [{ name: "x", run: "true" }], { runsOn: "no-such-label" });
    await assert.rejects(
      fleet.bus.publishJob(job),
      (e: unknown) => e instanceof Error && e.message.includes("no-such-label"),
    );
  });

  test("ciadm run --amqp sends a workflow through the fleet and prints its live output", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "solstice-fleet-wf-"));
    try {
      const workflow = path.join(dir, "fleet.yml");
      await writeFile(
        workflow,
        [
          "on: push",
          "jobs:",
          "  remote:",
          `    runs-on: ${TEST_LABEL}`,
          "    steps:",
          "      - run: echo via-the-fleet from $(hostname)",
        ].join("\n"),
      );
      const run = await runCiadm(["run", workflow, "--amqp", AMQP_URL, "--namespace", fleet.namespace], dir);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /accepted by host-/);
      assert.match(run.stdout, /│ via-the-fleet from /);
      assert.match(run.stdout, /Summary:\n\s+remote\s+succeeded/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("no qemu process or run directory survives the jobs", async () => {
    // A warm pool keeps an idle VM by design; draining destroys it, so what is left is a leak.
    if (START_MODE === "warm") await fleet.orchestrator.drain();
    const left = await leftovers(fleet.runRoot);
    assert.deepEqual(left, { dirs: [], qemu: [] });
  });
});
