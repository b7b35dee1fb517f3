import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { OwnerTakenError } from "@solstice/bus";
import { type Daemon, githubRunnerConfigSchema, registerRunner, startDaemon } from "@solstice/github-runner";
import { pino } from "pino";
import { type FakeGitHub, startFakeGitHub } from "./fakes/github/fake-github.ts";
import { AMQP_URL, startTestFleet, type TestFleet } from "./support/fleet.ts";

// Two GitHubs (github.com and an Enterprise Server, say) hand out the same runner ids. Two runners,
// one registered with each, on one fleet namespace must not share an owner queue: if they did,
// each would take and drop the other's job events, and those jobs would never end.

const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });
let fleet: TestFleet;
let dir: string;
const fakes: FakeGitHub[] = [];
const daemons: Daemon[] = [];

before(async () => {
  fleet = await startTestFleet("tiny=2");
  dir = await mkdtemp(path.join(tmpdir(), "solstice-github-owners-"));
});
after(async () => {
  for (const daemon of daemons) await daemon.stop(5_000);
  await fleet?.close();
  for (const gh of fakes) await gh.close();
  await rm(dir, { recursive: true, force: true });
});

test("runners of two GitHubs with the same runner id each get their own job's result; a second runner on one owner is refused (tiny guests, TCG)", {
  timeout: 400_000,
}, async (t) => {
  const runners = [];
  for (const name of ["dotcom", "ghes"]) {
    const gh = await startFakeGitHub({ pollHoldMs: 2000 });
    fakes.push(gh);
    const target = path.join(dir, name);
    await mkdir(target);
    const registration = await registerRunner({
      url: `${gh.url}/acme/app`,
      token: gh.addRegistrationToken(`${gh.url}/acme/app`, { useV2Flow: true }),
      name: `solstice-${name}`,
      labels: ["solstice-tiny:vm:tiny"],
      dir: target,
      log,
    });
    const config = githubRunnerConfigSchema.parse({
      runnerDir: target,
      namespace: fleet.namespace,
      amqpUrl: AMQP_URL,
      pollTimeoutMs: 10_000,
      reportIntervalMs: 250,
      errorBackoffMs: 500,
      sessionRetryMs: 500,
    });
    runners.push({ gh, registration, config });
  }
  const [a, b] = runners;
  assert.ok(a && b);
  assert.equal(a.registration.settings.agentId, b.registration.settings.agentId, "both GitHubs gave the same id");
  for (const r of runners) {
    daemons.push(await startDaemon({ config: r.config, registration: r.registration, bus: fleet.bus, log }));
  }

  const jobs = runners.map((r, i) =>
    r.gh.queueJob(r.registration.settings.agentId, { steps: [{ name: "hello", run: `echo from-${i}` }] }),
  );
  await Promise.all(
    runners.map((r, i) => r.gh.waitFor(() => jobs[i]?.state === "completed", 300_000, `job ${i}'s completion`)),
  );
  assert.deepEqual(
    jobs.map((job) => job.completion?.conclusion),
    ["succeeded", "succeeded"],
  );

  // One owner, set by hand on two runners: the second does not start, and says why.
  const owner = "github-shared-17";
  const first = await startDaemon({
    config: { ...a.config, owner },
    registration: a.registration,
    bus: fleet.bus,
    log,
  });
  daemons.push(first);
  await assert.rejects(
    startDaemon({ config: { ...b.config, owner }, registration: b.registration, bus: fleet.bus, log }),
    (error: unknown) => {
      t.diagnostic(String(error));
      return error instanceof OwnerTakenError && error.owner === owner;
    },
  );
});
