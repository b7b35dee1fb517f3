import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomInt, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import { after, before, describe, test } from "node:test";
import { create, type JobEvent, Outcome, PlannedStepSchema } from "@solstice/protocol";
import { startTestFleet, type TestFleet, tinyJob } from "./support/fleet.ts";

/**
 * A stand-in for "the internet" that the test owns: a TCP listener in a network namespace of its
 * own, linked to the host by a veth pair on a private /30.
 *
 * Why there: a guest's outbound connections leave through pasta as the host's own sockets, but
 * pasta copies the host's addresses into the VM's namespace, so neither the host's loopback nor
 * its own addresses lead to a host service (packages/vm/test/qemu-backend.test.ts proves that). An
 * address behind a veth is a real route out of the host, like any address on the internet, and it
 * belongs to this test alone.
 */
class OutsideListener {
  readonly namespace = `slst-${randomUUID().slice(0, 8)}`;
  private readonly hostSide = `slh${this.namespace.slice(5, 11)}`;
  private readonly peerSide = `sln${this.namespace.slice(5, 11)}`;
  readonly address: string;
  private readonly hostAddress: string;
  readonly port = 7_000 + randomInt(1_000);
  private server: ChildProcess | undefined;

  constructor() {
    const used = new Set(
      Object.values(networkInterfaces())
        .flat()
        .map((a) => a?.address.split(".").slice(0, 3).join(".")),
    );
    let net: string;
    do net = `10.213.${randomInt(256)}`;
    while (used.has(net));
    const base = randomInt(64) * 4;
    this.hostAddress = `${net}.${base + 1}`;
    this.address = `${net}.${base + 2}`;
  }

  async start(): Promise<void> {
    const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
    ip("netns", "add", this.namespace);
    ip("link", "add", this.hostSide, "type", "veth", "peer", "name", this.peerSide);
    ip("link", "set", this.peerSide, "netns", this.namespace);
    ip("addr", "add", `${this.hostAddress}/30`, "dev", this.hostSide);
    ip("link", "set", this.hostSide, "up");
    ip("-n", this.namespace, "addr", "add", `${this.address}/30`, "dev", this.peerSide);
    ip("-n", this.namespace, "link", "set", this.peerSide, "up");
    const script = `require("node:net").createServer((s) => s.end("hello-from-outside\\n")).listen(${this.port}, "${this.address}", () => console.log("listening"))`;
    const server = spawn("ip", ["netns", "exec", this.namespace, process.execPath, "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      let err = "";
      server.stderr?.on("data", (d) => {
        err += d;
      });
      server.stdout?.once("data", () => resolve());
      server.once("exit", (code) => reject(new Error(`the outside listener exited ${code}: ${err}`)));
    });
  }

  stop(): void {
    this.server?.kill("SIGKILL");
    // Deleting the namespace deletes its end of the veth pair, and with it the host's end.
    execFileSync("ip", ["netns", "del", this.namespace], { stdio: "ignore" });
  }
}

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
  const outside = new OutsideListener();
  // Another service on the host's loopback, which no guest may reach.
  let hostService: Server;
  before(async () => {
    await outside.start();
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
    const target = `${outside.address}:${outside.port}`;
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
