import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { type Bus, connectBus } from "@solstice/bus";
import { type Daemon, githubRunnerConfigSchema, registerRunner, startDaemon } from "@solstice/github-runner";
import { pino } from "pino";
import { type FakeGitHub, startFakeGitHub } from "./fakes/github/fake-github.ts";
import { AMQP_URL } from "./support/fleet.ts";

// With the default settings, one failed poll must not hold the next job for the official runner's
// 15–30 s: the runner asks again after about a second, and waits longer only as failures go on.
// No job runs, so no VM: what is checked is when the fake GitHub saw the polls.

const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });
const namespace = `test-${randomUUID().slice(0, 8)}`;
let gh: FakeGitHub;
let bus: Bus;
let daemon: Daemon | undefined;
let dir: string;

before(async () => {
  gh = await startFakeGitHub({ pollHoldMs: 500 });
  bus = await connectBus({ url: AMQP_URL, namespace, log });
  dir = await mkdtemp(path.join(tmpdir(), "solstice-github-retry-"));
});
after(async () => {
  await daemon?.stop(1000);
  await bus?.deleteNamespace();
  await bus?.close();
  await gh?.close();
  await rm(dir, { recursive: true, force: true });
});

test("after failed polls the runner retries in short, growing waits (default settings)", {
  timeout: 60_000,
}, async () => {
  const registration = await registerRunner({
    url: `${gh.url}/acme/app`,
    token: gh.addRegistrationToken(`${gh.url}/acme/app`),
    name: "solstice-retry",
    labels: ["solstice-tiny:vm:tiny"],
    dir,
    log,
  });
  // Only what a deployment must set: every timing is the default.
  const config = githubRunnerConfigSchema.parse({ runnerDir: dir, namespace, amqpUrl: AMQP_URL });
  daemon = await startDaemon({ config, registration, bus, log });
  await gh.waitFor(() => daemon?.listening === true, 10_000, "the runner listening");
  const from = gh.calls.length;
  gh.failNext(/\/messages$/, 503, 3);
  const polls = () => gh.calls.slice(from).filter((c) => /\/messages$/.test(c.path));
  await gh.waitFor(() => polls().length >= 4, 20_000, "three failed polls and the one after");
  const gaps = polls()
    .slice(0, 4)
    .map((call, i, all) => (i === 0 ? 0 : call.at - (all[i - 1]?.at ?? 0)))
    .slice(1);
  assert.ok((gaps[0] ?? Infinity) < 2_500, `first retry after ${gaps[0]} ms`);
  assert.ok((gaps[2] ?? 0) > (gaps[0] ?? 0), `the waits grow: ${gaps.join(", ")} ms`);
});
