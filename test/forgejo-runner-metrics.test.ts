import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { type Bus, connectBus } from "@solstice/bus";
import { Result, registerRunner } from "@solstice/forgejo-runner";
import { generateFleetKey } from "@solstice/protocol";
import { pino } from "pino";
import { type FakeForgejo, startFakeForgejo } from "./fakes/forgejo/fake-forgejo.ts";
import { projectRoot } from "./support/ciadm.ts";
import { AMQP_URL } from "./support/fleet.ts";

// The runner daemon as an operator starts it (its own process, configured by SOLSTICE_* variables),
// against the fake forge and the real RabbitMQ, with no orchestrator: tasks end without a VM, which
// is enough to move every series. Its /healthz, /readyz and /metrics are read over HTTP.

const REFUSED = `name: ci
jobs:
  build:
    name: build
    runs-on: solstice-tiny
    steps:
      - uses: docker://alpine:3.20
      - run: echo never
`;

describe("the forgejo-runner daemon's health and metrics endpoint", { timeout: 120_000 }, () => {
  let forge: FakeForgejo;
  let dir: string;
  let child: ChildProcess;
  let port = 0;
  let bus: Bus;
  const logs: Record<string, unknown>[] = [];
  const id = randomUUID().slice(0, 8);
  const namespace = `test-${id}`;
  const owner = `owner-${id}`;
  const exited = () =>
    new Promise<number | string>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? String(child.signalCode));
      else child.once("exit", (code, signal) => resolve(code ?? String(signal)));
    });
  const url = (p: string) => `http://127.0.0.1:${port}${p}`;
  const metric = async (name: string) => {
    const text = await (await fetch(url("/metrics"))).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  };
  const waitFor = async (predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    forge = await startFakeForgejo();
    forge.addRegistrationToken("registration-token");
    dir = await mkdtemp(path.join(tmpdir(), "solstice-forgejo-metrics-"));
    const file = path.join(dir, ".runner");
    await registerRunner({
      instance: forge.url,
      token: "registration-token",
      name: "metrics",
      labels: ["solstice-tiny:vm:tiny"],
      file,
    });
    child = spawn(process.execPath, ["--import", "tsx", "services/forgejo-runner/src/main.ts", "daemon"], {
      cwd: projectRoot,
      env: {
        ...process.env,
        SOLSTICE_RUNNER_FILE: file,
        SOLSTICE_AMQP_URL: AMQP_URL,
        SOLSTICE_NAMESPACE: namespace,
        SOLSTICE_OWNER: owner,
        SOLSTICE_FLEET_KEYS: generateFleetKey("metricstest"),
        SOLSTICE_METRICS_PORT: "0",
        SOLSTICE_FETCH_INTERVAL_MS: "200",
        SOLSTICE_REPORT_INTERVAL_MS: "200",
        SOLSTICE_MAX_BACKOFF_MS: "1000",
        SOLSTICE_LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line });
      }
    });
    await waitFor(() => logs.some((l) => l.msg === "serving /healthz, /readyz and /metrics"), "the endpoint");
    port = Number(logs.find((l) => l.msg === "serving /healthz, /readyz and /metrics")?.port);
    bus = await connectBus({ url: AMQP_URL, namespace, log: pino({ level: "silent" }) });
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited();
    }
    // The runner's owner queue is this bus's to delete once it knows of it.
    const events = await bus?.consumeEvents({ owner, onEvent: async () => {} });
    await events?.stop();
    await bus?.deleteNamespace();
    await bus?.close();
    await forge?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("/healthz answers and /readyz turns ready once the runner declared itself", async () => {
    assert.equal((await fetch(url("/healthz"))).status, 200);
    await waitFor(async () => (await fetch(url("/readyz"))).status === 200, "ready");
    assert.ok(logs.some((l) => l.msg === "declared to the forge"));
    assert.equal(await metric("solstice_forgejo_capacity_slots"), 1);
    assert.equal(await metric("solstice_broker_connected"), 1);
    assert.equal(await metric("solstice_forgejo_tasks_taken_total"), 0);
    // prom-client's process series: memory and event-loop lag tell a leak or a blocked loop apart.
    assert.ok(((await metric("process_resident_memory_bytes")) ?? 0) > 0, "process memory");
    assert.ok((await metric("nodejs_eventloop_lag_seconds")) !== undefined, "event-loop lag");
  });

  test("a refused task and an unroutable one count as taken and failed, and every row sent is counted", async () => {
    const refused = forge.queueJob({ workflow: REFUSED });
    await forge.waitFor(() => forge.taskOfJob(refused)?.result === Result.FAILURE, 20_000, "the refused task's end");
    // No orchestrator serves "tiny" here: the broker returns the job at once.
    const unroutable = forge.queueJob({ workflow: REFUSED.replace("      - uses: docker://alpine:3.20\n", "") });
    await forge.waitFor(
      () => forge.taskOfJob(unroutable)?.result === Result.FAILURE,
      20_000,
      "the unroutable task's end",
    );
    const unroutableTask = forge.taskOfJob(unroutable);
    assert.equal(unroutableTask?.result, Result.FAILURE);
    assert.match(
      unroutableTask?.log.map((l) => l.content).join("\n") ?? "",
      /runs-on "solstice-tiny" goes to the fleet label "tiny", which no host serves/,
      "the log names the label, at once",
    );
    await waitFor(
      async () => (await metric('solstice_forgejo_tasks_finished_total{result="failure"}')) === 2,
      "2 failures",
    );
    assert.equal(await metric("solstice_forgejo_tasks_taken_total"), 2);
    assert.equal(await metric('solstice_forgejo_tasks_finished_total{result="success"}'), 0);
    assert.equal(await metric("solstice_forgejo_tasks_running"), 0);
    const rows = [refused, unroutable].reduce((sum, job) => sum + (forge.taskOfJob(job)?.log.length ?? 0), 0);
    assert.equal(await metric("solstice_forgejo_log_rows_sent_total"), rows, "every row the forge stored, once");
  });

  test("a forge that refuses connections makes the runner not ready and counts the errors; it recovers", async () => {
    forge.goAway("refuse");
    await waitFor(async () => (await fetch(url("/readyz"))).status === 503, "not ready");
    const why = await (await fetch(url("/readyz"))).text();
    assert.match(why, /forge/, why);
    await waitFor(
      async () => ((await metric('solstice_forgejo_forge_errors_total{rpc="FetchTask"}')) ?? 0) >= 2,
      "FetchTask errors counted",
    );
    await forge.comeBack();
    await waitFor(async () => (await fetch(url("/readyz"))).status === 200, "ready again");
    assert.equal((await fetch(url("/healthz"))).status, 200);
  });

  test("SIGTERM stops the daemon cleanly", async () => {
    child.kill("SIGTERM");
    assert.equal(await exited(), 0);
  });
});
