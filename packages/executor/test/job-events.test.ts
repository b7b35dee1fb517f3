import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { JobEvent } from "@solstice/protocol";
import { JobEventStream } from "../src/index.ts";

const texts = (event: JobEvent | undefined) =>
  event?.body.case === "log" ? event.body.value.lines.map((l) => l.text) : [];

test("a step's first output line is published at once; the lines after it wait for the batch", async () => {
  const published: { event: JobEvent; at: number }[] = [];
  const started = Date.now();
  const events = new JobEventStream(
    "job",
    1,
    async (event) => {
      published.push({ event, at: Date.now() - started });
    },
    { maxDelayMs: 500 },
  );
  await events.stepStarted(0, "first");
  events.line("first line", "stdout");
  events.line("second line", "stdout");
  events.line("third line", "stderr");
  await sleep(50);
  assert.deepEqual(
    published.map((p) => p.event.body.case),
    ["stepStarted", "log"],
  );
  assert.deepEqual(texts(published[1]?.event), ["first line"]);
  await sleep(600);
  assert.deepEqual(texts(published[2]?.event), ["second line", "third line"], "the rest came as one batch");
  assert.ok((published[2]?.at ?? 0) >= 500);
  // The next step's first line goes at once again.
  await events.stepFinished(0, { outcome: 1, conclusion: 1, exitCode: 0 });
  await events.stepStarted(1, "second");
  events.line("step two", "stdout");
  await sleep(50);
  assert.deepEqual(texts(published.at(-1)?.event), ["step two"]);
  await events.drain();
});

test("a job output that holds a secret is not sent, masked or otherwise, and the log says which", async () => {
  const published: JobEvent[] = [];
  const events = new JobEventStream("job", 1, async (event) => {
    published.push(event);
  });
  events.masker.add("hunter2-secret");
  await events.jobFinished(1, "", { token: "x-hunter2-secret-y", version: "1.2.3" });
  await events.drain();
  const end = published.at(-1);
  assert.equal(end?.body.case, "jobFinished");
  assert.deepEqual(end?.body.case === "jobFinished" ? { ...end.body.value.outputs } : undefined, { version: "1.2.3" });
  const lines = published.flatMap(texts);
  assert.deepEqual(lines, ["output token was not sent: it contains a secret"]);
});
