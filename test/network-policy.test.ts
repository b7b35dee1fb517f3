import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { create, type JobEvent, Outcome, PlannedStepSchema } from "@solstice/protocol";
import { startTestFleet, type TestFleet, tinyJob } from "./support/fleet.ts";
import { OutsideNetwork } from "./support/outside-network.ts";

/** A step that tries each `ip:port` from the guest and prints "open …" (with what it read) or "closed …". */
function probe(targets: string[]): string {
  return targets
    .map((t) => {
      const [ip, port] = t.split(":");
      return `if reply=$(timeout 5 bash -c 'exec 3<>/dev/tcp/${ip}/${port} && head -n 1 <&3' 2>/dev/null); then echo "open ${t} $reply"; else echo "closed ${t}"; fi`;
    })
    .join("\n");
}

function logLines(events: JobEvent[], step: number): string[] {
  return events.flatMap((e) =>
    e.body.case === "log" && e.body.value.stepIndex === step ? e.body.value.lines.map((l) => l.text) : [],
  );
}

describe("a label with network policy none-after-checkout (tiny guest, TCG)", { timeout: 300_000 }, () => {
  let fleet: TestFleet;
  // "The internet": a listener of the test's own behind a veth pair (support/outside-network.ts).
  const outside = new OutsideNetwork();
  const port = 7_000 + randomInt(1_000);
  before(async () => {
    outside.start();
    await outside.run(
      `require("node:net").createServer((s) => s.end("hello-from-outside\\n")).listen(${port}, "${outside.address}", () => console.log("listening"))`,
    );
    fleet = await startTestFleet("tiny=1", { env: { SOLSTICE_NETWORK_POLICY: "tiny=none-after-checkout" } });
  });
  after(async () => {
    await fleet?.close();
    outside.stop();
  });

  test("a step before the checkout reaches an outside listener, the steps after it reach nothing, and SSH goes on", async () => {
    const target = `${outside.address}:${port}`;
    const hostServices = ["10.0.2.2:5432", "10.0.2.2:5672"];
    const job = tinyJob(fleet.owner, [
      { name: "before the checkout", run: probe([target, ...hostServices]) },
      { name: "after the checkout", run: probe([target]) },
      { name: "still reachable over SSH", run: "echo still-here" },
    ]);
    // The checkout has no repository to fetch here, so it fails; continue-on-error keeps the job
    // going, and the cut still comes once it has finished, whatever its outcome.
    job.steps.splice(
      1,
      0,
      create(PlannedStepSchema, {
        index: 1,
        name: "checkout",
        action: { case: "checkout", value: { path: "" } },
        continueOnError: true,
      }),
    );
    job.steps.forEach((step, index) => {
      step.index = index;
    });

    const events = await fleet.runToEnd(job);
    const finished = events.at(-1);
    assert.equal(finished?.body.case, "jobFinished");
    assert.equal(finished.body.value.result, Outcome.SUCCESS, finished.body.value.reason);

    assert.deepEqual(logLines(events, 0), [
      `open ${target} hello-from-outside`,
      ...hostServices.map((t) => `closed ${t}`),
    ]);
    assert.deepEqual(logLines(events, 2), [`closed ${target}`]);
    assert.deepEqual(logLines(events, 3), ["still-here"]);

    // The cut is announced after the checkout finished and before the next step started.
    const order = events.flatMap((e) => {
      if (e.body.case === "stepStarted") return [`start ${e.body.value.index}`];
      if (e.body.case === "stepFinished") return [`finish ${e.body.value.index}`];
      if (e.body.case === "log" && e.body.value.lines.some((l) => l.text.includes("network is cut"))) return ["cut"];
      return [];
    });
    assert.deepEqual(order, [
      "start 0",
      "finish 0",
      "start 1",
      "finish 1",
      "cut",
      "start 2",
      "finish 2",
      "start 3",
      "finish 3",
    ]);
  });
});
