import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { type Bus, connectBus } from "@solstice/bus";
import { Result } from "@solstice/forgejo-runner";
import { type Daemon, githubRunnerConfigSchema, registerRunner, startDaemon } from "@solstice/github-runner";
import { EventOrder, FleetKeyring, generateFleetKey, LogStream, Outcome, parseFleetKeys } from "@solstice/protocol";
import { pino } from "pino";
import { type FakeForgejo, startFakeForgejo } from "../fakes/forgejo/fake-forgejo.ts";
import { type FakeGitHub, startFakeGitHub } from "../fakes/github/fake-github.ts";
import { followCiadm } from "../support/ciadm.ts";
import { startTestFleet, type TestFleet, tinyJob } from "../support/fleet.ts";
import { type RunningRunner, startRegisteredRunner } from "../support/forgejo-daemon.ts";
import { type PrivateRabbitMq, startPrivateRabbitMq } from "../support/private-rabbitmq.ts";
import { TEST_LABEL } from "../support/start-mode.ts";

// RabbitMQ stopped for 10 s while four jobs run, one for each kind of owner: the test itself, a
// forgejo-runner, a github-runner and `ciadm run --amqp`. Each must get every line once, in order,
// and its job's result. Then Ctrl-C on a `ciadm run` whose broker is away must end it in seconds.
// The broker is a node of this test's own (support/private-rabbitmq.ts), not the machine's.
const LINES = 40;
const COUNT = `for i in $(seq 1 ${LINES}); do echo "line $i"; sleep 0.5; done`;
const expected = Array.from({ length: LINES }, (_, i) => `line ${i + 1}`);
const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("brokerrestart")));

let broker: PrivateRabbitMq;
let fleet: TestFleet;
let forge: FakeForgejo;
let gh: FakeGitHub;
let runnerBus: Bus;
let forgejoRunner: RunningRunner;
let githubRunner: Daemon;
let dir: string;

before(async () => {
  broker = await startPrivateRabbitMq();
  dir = await mkdtemp(path.join(tmpdir(), "solstice-broker-restart-"));
  // A lease long enough to outlast the restart: the host must keep the jobs, not cancel them.
  fleet = await startTestFleet("tiny=4", { amqpUrl: broker.url, keyring, env: { SOLSTICE_LEASE_MS: "120000" } });
  runnerBus = await connectBus({ url: broker.url, namespace: fleet.namespace, log });
  forge = await startFakeForgejo();
  forgejoRunner = await startRegisteredRunner({
    forge,
    name: "restart",
    bus: runnerBus,
    namespace: fleet.namespace,
    keyring,
    log,
    config: { fetchIntervalMs: 200, reportIntervalMs: 300, leaseMs: 120_000 },
  });
  gh = await startFakeGitHub({ pollHoldMs: 2000 });
  const registration = await registerRunner({
    url: `${gh.url}/acme/app`,
    token: gh.addRegistrationToken(`${gh.url}/acme/app`, { useV2Flow: true }),
    name: "solstice-restart",
    labels: ["solstice-tiny:vm:tiny"],
    dir,
    log,
  });
  githubRunner = await startDaemon({
    config: githubRunnerConfigSchema.parse({
      runnerDir: dir,
      namespace: fleet.namespace,
      amqpUrl: broker.url,
      pollTimeoutMs: 10_000,
      reportIntervalMs: 250,
      errorBackoffMs: 500,
      sessionRetryMs: 500,
      leaseMs: 120_000,
    }),
    registration,
    bus: runnerBus,
    log,
    keyring,
  });
});
after(async () => {
  await githubRunner?.stop(5_000);
  await forgejoRunner?.stop(5_000);
  await runnerBus?.close();
  await fleet?.close();
  await gh?.close();
  await forge?.close();
  await broker?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The lines of `text` that are `line N`, in the order they appear. */
const countedLines = (text: string) => [...text.matchAll(/\bline (\d+)\b/g)].map((m) => `line ${m[1]}`);

async function workflowFile(name: string, run: string): Promise<string> {
  const file = path.join(dir, `${name}.yml`);
  await writeFile(
    file,
    ["on: push", "jobs:", `  ${name}:`, `    runs-on: ${TEST_LABEL}`, "    steps:", `      - run: ${run}`].join("\n"),
  );
  return file;
}

async function untilRunning(count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const running = await fleet.store.listJobs({ state: "running" });
    if (running.filter((job) => job.steps.some((step) => step.state === "running")).length >= count) return;
    if (Date.now() > deadline) throw new Error(`${count} jobs did not all reach a running step in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

test("RabbitMQ restarted mid-job: every owner (the test, forgejo-runner, github-runner, ciadm) gets every line once, in order, and its result (tiny guests, TCG)", {
  timeout: 600_000,
}, async (t) => {
  const ciadmEnv = {};
  const job = tinyJob(fleet.owner, [{ name: "count", run: COUNT }]);
  const finished = fleet.runToEnd(job, 500_000);
  const forgejoJob = forge.queueJob({
    workflow: `name: ci\njobs:\n  count:\n    runs-on: solstice-tiny\n    steps:\n      - run: ${COUNT}\n`,
  });
  const githubJob = gh.queueJob(registration(), { steps: [{ name: "count", run: COUNT }] });
  const ciadm = followCiadm(
    ["run", await workflowFile("count", COUNT), "--amqp", broker.url, "--namespace", fleet.namespace],
    ciadmEnv,
  );
  await untilRunning(4, 300_000);
  const { downMs } = await broker.restart(10_000);
  t.diagnostic(`RabbitMQ was down for ${downMs} ms while the four steps ran`);

  // Delivery is at least once: an event whose publish confirm the restart swallowed is published
  // again. Every owner puts events through EventOrder (forge-relay, ciadm), and so does the test:
  // "once and in order" is what EventOrder hands on; the raw redeliveries are reported.
  const delivered = await finished;
  const order = new EventOrder();
  const events = delivered.flatMap((event) => order.push(event));
  assert.deepEqual(
    events.map((e) => Number(e.seq)),
    events.map((_, i) => i + 1),
    "the test's events numbered 1..n, in order, with no gap",
  );
  assert.equal(order.expected, BigInt(events.length + 1), "no event left waiting behind a gap");
  t.diagnostic(`${delivered.length - events.length} event(s) delivered twice to the test, dropped by seq`);
  const lines = events
    .flatMap((e) => (e.body.case === "log" ? e.body.value.lines : []))
    .filter((l) => l.stream === LogStream.STDOUT)
    .map((l) => l.text);
  assert.deepEqual(lines, expected);
  const end = events.find((e) => e.body.case === "jobFinished");
  assert.equal(end?.body.case === "jobFinished" && end.body.value.result, Outcome.SUCCESS);

  await forge.waitFor(
    () => forge.taskOfJob(forgejoJob)?.result === Result.SUCCESS,
    300_000,
    "the forgejo task's success",
  );
  const task = forge.taskOfJob(forgejoJob);
  assert.ok(task);
  assert.deepEqual(countedLines(forge.logText(task.id)), expected, "Forgejo's log: every line once, in order");

  await gh.waitFor(() => githubJob.state === "completed", 300_000, "the GitHub job's completion");
  assert.equal(githubJob.completion?.conclusion, "succeeded");
  const githubLog = [...githubJob.logs.values()].join("\n");
  assert.deepEqual(countedLines(githubLog), expected, "GitHub's uploaded log: every line once, in order");

  const run = await ciadm.done;
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.deepEqual(countedLines(run.stdout), expected, "ciadm's output: every line once, in order");
  // One line each way (the host's silence may be noted between them: ciadm cannot tell whose side is cut).
  assert.match(run.stderr, /lost the broker; reconnecting…\n(.*\n)*reconnected to the broker after \d+ s\n/);
  assert.doesNotMatch(run.stderr, /"level":/, "no raw JSON log line in the person's terminal");

  // Ctrl-C while the broker is away: the run ends within the cancel grace, not never.
  const sleeper = followCiadm(
    ["run", await workflowFile("sleeper", "sleep 600"), "--amqp", broker.url, "--namespace", fleet.namespace],
    ciadmEnv,
  );
  await sleeper.stderrMatches(/running on host-/, 300_000);
  await broker.stopApp();
  const interruptedAt = Date.now();
  sleeper.kill("SIGINT");
  const interrupted = await sleeper.done;
  const exitMs = Date.now() - interruptedAt;
  t.diagnostic(`ciadm ended ${exitMs} ms after Ctrl-C with the broker away`);
  await broker.startApp();
  assert.ok(exitMs < 20_000, `ended in ${exitMs} ms`);
  assert.notEqual(interrupted.code, 0);
  assert.match(interrupted.stdout, /sleeper\s+cancelled/);
});

function registration(): number {
  const runner = gh.runnerByName("solstice-restart");
  assert.ok(runner);
  return runner.id;
}
