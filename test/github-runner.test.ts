import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type Daemon, githubRunnerConfigSchema, registerRunner, startDaemon } from "@solstice/github-runner";
import { FleetKeyring, generateFleetKey, parseFleetKeys } from "@solstice/protocol";
import { pino } from "pino";
import { type FakeGitHub, type FakeJob, startFakeGitHub } from "./fakes/github/fake-github.ts";
import { freshActionCache } from "./support/action-cache.ts";
import { AMQP_URL, leftovers, startTestFleet, type TestFleet } from "./support/fleet.ts";

// The fake GitHub, this runner, the real RabbitMQ and PostgreSQL, and an orchestrator booting
// tiny TCG guests (one at a time). Three VMs in all: a passing job with a checkout and a
// JavaScript action (resolved through GitHub's action download info, its tarball downloaded by
// the VM host into an empty cache), a failing step after the same action (from the host's cache),
// a cancellation. The unsupported action and the unresolvable one boot none.

const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });

// A JavaScript action using Node built-ins only, hosted by the fake GitHub.
const HELLO_ACTION = {
  "action.yml": `name: hello
inputs:
  who:
    default: World
outputs:
  greeting:
    description: the sentence
runs:
  using: node20
  main: index.js
`,
  "index.js": `const sentence = "hello from the action, " + process.env.INPUT_WHO;
console.log(sentence);
require("node:fs").appendFileSync(process.env.GITHUB_OUTPUT, "greeting=" + sentence + "\\n");
`,
};
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("githubtest")));

// The guest cannot reach this host, so the checkout clones a repository the first step makes
// inside the guest: github.server_url is file:///tmp/forge, as a GHES URL would be http(s).
const MAKE_REPOSITORY = [
  "mkdir -p /tmp/src /tmp/forge/acme",
  "cd /tmp/src && git init -q && git checkout -q -b main",
  'echo "# app under test" > README.md && git add README.md',
  "git -c user.name=t -c user.email=t@example.com commit -q -m first",
  "git init -q --bare /tmp/forge/acme/app.git && git push -q /tmp/forge/acme/app.git main",
].join("\n");

describe("github-runner end to end (tiny VMs)", { timeout: 900_000 }, () => {
  let gh: FakeGitHub;
  let fleet: TestFleet;
  let dir: string;
  let broker: Daemon;
  let classic: Daemon;
  let brokerRunnerId = 0;
  let classicRunnerId = 0;
  let actionCache: Awaited<ReturnType<typeof freshActionCache>>;

  const config = (runnerDir: string) =>
    githubRunnerConfigSchema.parse({
      runnerDir,
      namespace: fleet.namespace,
      amqpUrl: AMQP_URL,
      pollTimeoutMs: 10_000,
      reportIntervalMs: 250,
      renewIntervalMs: 1000,
      errorBackoffMs: 500,
      sessionRetryMs: 500,
      cancelGraceMs: 30_000,
    });

  before(async () => {
    // A lock of 3 s: a job that ran ~10 s without its renewals would be abandoned by the fake.
    gh = await startFakeGitHub({ pollHoldMs: 2000, lockMs: 3000 });
    await gh.publishAction("acme/hello-action", HELLO_ACTION, ["v1"]);
    actionCache = await freshActionCache();
    fleet = await startTestFleet("tiny=1", { keyring, env: { SOLSTICE_ACTIONS_CACHE: actionCache.dir } });
    dir = await mkdtemp(path.join(tmpdir(), "solstice-github-e2e-"));
  });
  after(async () => {
    await broker?.stop(5000);
    await classic?.stop(5000);
    await fleet?.close();
    await gh?.close();
    await actionCache?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const allText = (job: FakeJob) =>
    JSON.stringify({
      live: [...job.live.values()].map((m) => [...m.values()]),
      logs: [...job.logs.values()],
      jobLog: job.jobLog,
      completion: job.completion?.raw,
      records: [...job.records.values()],
    });

  test("register: a runner-admin runner and a classic runner, files mode 0600", async () => {
    for (const [name, v2] of [
      ["broker", true],
      ["classic", false],
    ] as const) {
      const target = path.join(dir, name);
      await mkdir(target);
      const reg = await registerRunner({
        url: `${gh.url}/acme/app`,
        token: gh.addRegistrationToken(`${gh.url}/acme/app`, { useV2Flow: v2 }),
        name: `solstice-${name}`,
        labels: ["solstice-tiny:vm:tiny"],
        dir: target,
        log,
      });
      for (const file of [".runner", ".credentials", ".credentials_rsaparams"]) {
        assert.equal((await stat(path.join(target, file))).mode & 0o777, 0o600);
      }
      assert.equal(reg.settings.useV2Flow, v2);
      const daemon = await startDaemon({ config: config(target), registration: reg, bus: fleet.bus, log, keyring });
      if (v2) {
        broker = daemon;
        brokerRunnerId = reg.settings.agentId;
      } else {
        classic = daemon;
        classicRunnerId = reg.settings.agentId;
      }
    }
  });

  test("a job with a checkout, three run steps and a JavaScript action: every step's state, result and times, every line in order, the conclusion and outputs; the secret masked; the action resolved through GitHub and downloaded by the host", async (t) => {
    const job = gh.queueJob(brokerRunnerId, {
      github: { server_url: "file:///tmp/forge", sha: "", ref: "refs/heads/main" },
      secrets: { DEPLOY_KEY: "hunter2-very-secret" },
      outputs: { greeting: `\${{ steps.third.outputs.text }}`, said: `\${{ steps.hello.outputs.greeting }}` },
      steps: [
        { name: "make the repository", run: MAKE_REPOSITORY },
        { uses: "actions/checkout@v4" },
        { name: "first", run: "cat README.md\necho one-b" },
        { name: "second", run: 'echo "two $SECRET_VALUE"', env: { SECRET_VALUE: `\${{ secrets.DEPLOY_KEY }}` } },
        { name: "third", id: "third", run: 'echo three\necho "text=hello" >> "$GITHUB_OUTPUT"' },
        { uses: "acme/hello-action@v1", id: "hello", with: { who: "GitHub" } },
      ],
    });
    await gh.waitFor(() => job.state === "completed", 420_000, "the job's completion");
    const all = allText(job);
    assert.equal(job.completion?.conclusion, "succeeded", all);
    assert.deepEqual(job.completion?.outputs, { greeting: "hello", said: "hello from the action, GitHub" });
    const records = job.stepIds.map((id) => job.records.get(id));
    assert.deepEqual(
      records.map((r) => `${r?.state}/${r?.result}`),
      Array(6).fill("completed/succeeded"),
    );
    // Resolved once through Launch (run-service job), downloaded once, by the VM host, with its token.
    assert.equal(job.actionResolves, 1, "the runner asked GitHub where the action is");
    assert.equal(gh.actionDownloads("acme/hello-action"), 1, "the host downloaded its tarball");
    assert.ok(gh.liveLines(job, job.stepIds[5] ?? "").includes("hello from the action, GitHub"), all);
    assert.match(all, /Download action repository 'acme\/hello-action@v1' \(SHA:[0-9a-f]{40}\)/);
    assert.match(all, /Action acme\/hello-action@v1: acme\/hello-action@[0-9a-f]{12} \(node20\), downloaded/);
    assert.doesNotMatch(all, /ghs_action_/, "the download token never reached GitHub's log");
    let previousEnd = 0;
    for (const r of records) {
      const start = Date.parse(r?.startTime ?? "");
      const end = Date.parse(r?.finishTime ?? "");
      assert.ok(start <= end && start >= previousEnd - 5, `step ${r?.name} ran after the one before it`);
      previousEnd = end;
    }
    const [, checkout, first, second, third] = job.stepIds;
    assert.match(gh.liveLines(job, checkout ?? "").join("\n"), /Checked out [0-9a-f]{40}/);
    assert.deepEqual(gh.liveLines(job, first ?? ""), ["# app under test", "one-b"]);
    assert.deepEqual(gh.liveLines(job, second ?? ""), ["two ***"]);
    assert.deepEqual(gh.liveLines(job, third ?? ""), ["three"]);
    const uploaded = (id: string | undefined) =>
      (job.logs.get(id ?? "") ?? "")
        .split("\n")
        .filter(Boolean)
        .map((l) => l.replace(/^\S+Z /, ""));
    assert.deepEqual(uploaded(first), ["# app under test", "one-b"]);
    assert.deepEqual(uploaded(second), ["two ***"]);
    assert.match(job.jobLog ?? "", /# app under test\n.*one-b\n.*two \*\*\*\n.*three/);
    assert.doesNotMatch(all, /hunter2/, "the secret never reached GitHub");
    t.diagnostic(`lock renewals while the job ran: ${job.renewals}`);
    assert.ok(job.renewals >= 3, `the lock was renewed while the VM ran (${job.renewals} renewals)`);
  });

  test("a failing step fails the job (classic flow); the same action, resolved through the plan API, comes from the host's cache", async () => {
    const job = gh.queueJob(classicRunnerId, {
      steps: [
        { uses: "acme/hello-action@v1", with: { who: "classic" } },
        { name: "breaks", run: "echo about to fail; exit 3" },
        { name: "never", run: "echo never" },
      ],
    });
    await gh.waitFor(() => job.state === "completed", 420_000, "the failed job's completion");
    const all = allText(job);
    assert.equal(job.completion?.conclusion, "failed", all);
    assert.deepEqual(
      job.stepIds.map((id) => job.records.get(id)?.result),
      ["succeeded", "failed", "skipped"],
      all,
    );
    assert.ok(gh.liveLines(job, job.stepIds[0] ?? "").includes("hello from the action, classic"), all);
    assert.deepEqual(gh.liveLines(job, job.stepIds[1] ?? ""), ["about to fail", 'Step "breaks" failed: exit code 3']);
    assert.deepEqual(gh.liveLines(job, job.stepIds[2] ?? ""), [], "the step after the failure did not run");
    assert.equal(job.actionResolves, 1, "resolved through the classic plan API");
    assert.match(
      all,
      /Action acme\/hello-action@v1: acme\/hello-action@[0-9a-f]{12} \(node20\), from the host's cache/,
    );
    assert.equal(gh.actionDownloads("acme/hello-action"), 1, "no second download: the host's cache served it");
  });

  test("a cancellation from GitHub stops the VM within seconds", async (t) => {
    const job = gh.queueJob(brokerRunnerId, {
      steps: [
        { name: "sleeps", run: "echo sleeping; sleep 300" },
        { name: "after", run: "echo after" },
      ],
    });
    await gh.waitFor(
      () => gh.liveLines(job, job.stepIds[0] ?? "").includes("sleeping"),
      240_000,
      "the sleeping step's output",
    );
    const cancelledAt = Date.now();
    gh.cancelJob(job.jobId);
    await gh.waitFor(() => job.state === "completed", 60_000, "the cancelled job's completion");
    const seconds = (Date.now() - cancelledAt) / 1000;
    t.diagnostic(`cancel to completejob: ${seconds.toFixed(1)} s`);
    assert.ok(seconds < 20, `cancelled in ${seconds} s`);
    assert.equal(job.completion?.conclusion, "canceled");
    assert.deepEqual(
      job.stepIds.map((id) => job.records.get(id)?.result),
      ["canceled", "skipped"],
    );
    await gh.waitFor(() => broker.busy === false, 10_000, "the runner free again");
    const left = await leftovers(fleet.runRoot);
    assert.deepEqual(left.qemu, [], "no QEMU left running");
  });

  test("an action GitHub cannot resolve fails at once with GitHub's reason in the log and boots no VM", async () => {
    const job = gh.queueJob(brokerRunnerId, { steps: [{ run: "echo hello" }, { uses: "acme/hello-action@v9" }] });
    await gh.waitFor(() => job.state === "completed", 30_000, "the unresolved job's completion");
    assert.equal(job.completion?.conclusion, "failed");
    const lines = allText(job);
    assert.match(lines, /could not resolve the job's actions: .*Unable to resolve action `acme\/hello-action@v9`/);
    assert.doesNotMatch(lines, /accepted by host/);
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] });
  });

  test("an unsupported uses: fails at once with the reason in GitHub's log and boots no VM", async () => {
    const started = Date.now();
    const job = gh.queueJob(brokerRunnerId, {
      steps: [{ run: "echo hello" }, { uses: "actions/github-script@v7", with: { script: "x" } }],
    });
    await gh.waitFor(() => job.state === "completed", 30_000, "the refused job's completion");
    assert.ok(Date.now() - started < 10_000, "refused at once");
    assert.equal(job.completion?.conclusion, "failed");
    const lines = [...job.live.values()].flatMap((m) => [...m.values()]).join("\n");
    assert.match(
      lines,
      /steps\[1\] \(Run actions\/github-script@v7\)\.uses: action actions\/github-script@v7 is not supported/,
    );
    assert.doesNotMatch(lines, /accepted by host/);
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] });
  });
});
