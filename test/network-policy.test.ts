import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { createServer, type Server } from "node:net";
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

/**
 * A step that sends an HTTP request without a credential to each `ip:port` and prints "open …" with
 * the status line, or "closed …": the job cache answers HTTP, and says nothing until asked.
 */
function httpProbe(targets: string[]): string {
  return targets
    .map((t) => {
      const [ip, port] = t.split(":");
      return `if reply=$(timeout 5 bash -c 'exec 3<>/dev/tcp/${ip}/${port} && printf "GET /no-credential/_apis/artifactcache/caches HTTP/1.0\\r\\n\\r\\n" >&3 && head -n 1 <&3' 2>/dev/null); then echo "open ${t} $(printf %s "$reply" | tr -d '\\r')"; else echo "closed ${t}"; fi`;
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
  let hostService: Server;
  before(async () => {
    outside.start();
    await outside.run(
      `require("node:net").createServer((s) => s.end("hello-from-outside\\n")).listen(${port}, "${outside.address}", () => console.log("listening"))`,
    );
    // Another service on the host's loopback, which no guest may reach.
    hostService = createServer((socket) => socket.end("hello-from-the-host\n"));
    await new Promise<void>((resolve) => hostService.listen(0, "127.0.0.1", resolve));
    fleet = await startTestFleet("tiny=1", {
      env: { SOLSTICE_NETWORK_POLICY: "tiny=none-after-checkout" },
      jobCache: true,
    });
  });
  after(async () => {
    await fleet?.close();
    hostService?.close();
    outside.stop();
  });

  test("a step before the checkout reaches an outside listener and the job cache's port only; after it, only the job cache; SSH goes on", async () => {
    const target = `${outside.address}:${port}`;
    const hostPort = (hostService.address() as { port: number }).port;
    const cache = `10.0.2.2:${fleet.jobCachePort}`;
    // The broker, the database and another loopback service of the host: none answers the guest.
    const hostServices = ["10.0.2.2:5432", "10.0.2.2:5672", `10.0.2.2:${hostPort}`];
    const job = tinyJob(fleet.owner, [
      { name: "before the checkout", run: `${probe([target, ...hostServices])}\n${httpProbe([cache])}` },
      { name: "after the checkout", run: `${probe([target])}\n${httpProbe([cache])}` },
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

    // The cache answers (and, asked without a credential, refuses) before and after the cut: its
    // port is forwarded over the namespace's loopback, which the cut leaves up, so a job can
    // restore its dependencies after its checkout.
    assert.deepEqual(logLines(events, 0), [
      `open ${target} hello-from-outside`,
      ...hostServices.map((t) => `closed ${t}`),
      `open ${cache} HTTP/1.1 401 Unauthorized`,
    ]);
    assert.deepEqual(logLines(events, 2), [`closed ${target}`, `open ${cache} HTTP/1.1 401 Unauthorized`]);
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
