import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { type Bus, connectBus, createSlotGate, type JobConsumer, type Subscription } from "@solstice/bus";
import { JobEventStream } from "@solstice/executor";
import {
  type Daemon,
  decodeJitConfig,
  generateRunnerKey,
  githubRunnerConfigSchema,
  readRegistration,
  registerRunner,
  removeRunner,
  startDaemon,
  toRsaParams,
} from "@solstice/github-runner";
import {
  FleetKeyring,
  generateFleetKey,
  type JobRequest,
  Outcome,
  parseFleetKeys,
  secretContext,
} from "@solstice/protocol";
import { pino } from "pino";
import { type FakeGitHub, type FakeJob, startFakeGitHub } from "./fakes/github/fake-github.ts";
import { AMQP_URL } from "./support/fleet.ts";

// The github-runner against the fake GitHub and the real RabbitMQ, with a scripted host in place
// of an orchestrator (no VM): it plays each run step's `echo` lines back, prints the step's
// secrets unmasked (so the runner's own masking is what is tested), fails on `exit N` and
// waits on `sleep` until cancelled. The VM end-to-end tests are in github-runner.test.ts.

const LABEL = "scripted";
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("ghproto")));

function captureLog() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level: "debug" }, stream), text: () => lines.join("") };
}

interface ScriptedHost {
  received: JobRequest[];
  stop(): Promise<void>;
}

async function startScriptedHost(bus: Bus): Promise<ScriptedHost> {
  const received: JobRequest[] = [];
  const cancelled = new Set<string>();
  const controls: Subscription = await bus.consumeControl(async (control) => {
    if (control.command.case === "cancel") cancelled.add(control.command.value.jobId);
  });
  const slots = createSlotGate({ total: 4 });
  const consumer: JobConsumer = await bus.consumeJobs({
    labels: [LABEL],
    slots,
    pollIntervalMs: 50,
    onJob: async (job, delivery) => {
      received.push(job);
      const events = new JobEventStream(job.jobId, job.attempt, (e) => bus.publishEvent(e, job.owner));
      await events.accepted("scripted-host");
      await delivery.ack();
      void (async () => {
        let failed = false;
        for (const step of job.steps) {
          if (failed || cancelled.has(job.jobId)) {
            await events.stepFinished(step.index, {
              outcome: Outcome.SKIPPED,
              conclusion: Outcome.SKIPPED,
              exitCode: -1,
            });
            continue;
          }
          await events.stepStarted(step.index, step.name);
          for (const [variable, name] of Object.entries({ ...job.secretEnv, ...step.secretEnv })) {
            const sealed = job.secrets.find((s) => s.name === name)?.value;
            if (sealed) events.line(`${variable}=${keyring.unseal(sealed, secretContext(job.jobId, name))}`, "stdout");
          }
          let exit = 0;
          const script = step.action.case === "run" ? step.action.value.script : "checkout";
          for (const line of script.split("\n")) {
            const echo = /^echo (.*)$/.exec(line.trim());
            if (echo) events.line(echo[1] ?? "", "stdout");
            const code = /^exit (\d+)$/.exec(line.trim());
            if (code) exit = Number(code[1]);
            if (/^sleep/.test(line.trim())) {
              while (!cancelled.has(job.jobId)) await new Promise((r) => setTimeout(r, 50));
            }
          }
          const outcome = cancelled.has(job.jobId) ? Outcome.CANCELLED : exit === 0 ? Outcome.SUCCESS : Outcome.FAILURE;
          await events.stepFinished(step.index, { outcome, conclusion: outcome, exitCode: exit });
          if (outcome !== Outcome.SUCCESS) failed = true;
        }
        const result = cancelled.has(job.jobId) ? Outcome.CANCELLED : failed ? Outcome.FAILURE : Outcome.SUCCESS;
        const outputs = Object.fromEntries(Object.keys(job.outputs).map((k) => [k, `value-of-${k}`]));
        await events.jobFinished(result, failed ? "a step failed" : "", outputs);
        await events.drain();
        slots.release(delivery.label);
      })();
    },
  });
  return {
    received,
    async stop() {
      await consumer.stop();
      await controls.stop();
    },
  };
}

const fastConfig = (runnerDir: string, namespace: string) =>
  githubRunnerConfigSchema.parse({
    runnerDir,
    namespace,
    amqpUrl: AMQP_URL,
    pollTimeoutMs: 5000,
    reportIntervalMs: 100,
    renewIntervalMs: 300,
    errorBackoffMs: 200,
    sessionRetryMs: 200,
    leaseMs: 15_000,
    queueTimeoutMs: 20_000,
    cancelGraceMs: 5000,
  });

const recordsOf = (job: FakeJob) => job.stepIds.map((id) => job.records.get(id));

describe("github-runner protocol (fake GitHub, real RabbitMQ, scripted host)", { timeout: 120_000 }, () => {
  let gh: FakeGitHub;
  let bus: Bus;
  let host: ScriptedHost;
  let dir: string;
  const namespace = `test-${randomUUID().slice(0, 8)}`;
  const silent = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });

  before(async () => {
    gh = await startFakeGitHub({ pollHoldMs: 1000, lockMs: 2000, encryptMessages: true });
    bus = await connectBus({ url: AMQP_URL, namespace, log: silent });
    host = await startScriptedHost(bus);
    dir = await mkdtemp(path.join(tmpdir(), "solstice-github-"));
  });
  after(async () => {
    await host?.stop();
    await bus?.deleteNamespace();
    await bus?.close();
    await gh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe("classic flow (pipelines service)", () => {
    let daemon: Daemon;
    const classicDir = () => path.join(dir, "classic");
    after(() => daemon?.stop(5000));

    test("register writes .runner, .credentials and .credentials_rsaparams, mode 0600; GitHub gets the labels and the public key; the key is never logged", async () => {
      const { log, text } = captureLog();
      const target = classicDir();
      await (await import("node:fs/promises")).mkdir(target);
      const token = gh.addRegistrationToken(`${gh.url}/acme/app`);
      const reg = await registerRunner({
        url: `${gh.url}/acme/app`,
        token,
        name: "solstice-classic",
        labels: [`omnios:vm:${LABEL}`],
        dir: target,
        log,
      });
      for (const file of [".runner", ".credentials", ".credentials_rsaparams"]) {
        assert.equal((await stat(path.join(target, file))).mode & 0o777, 0o600, file);
      }
      const runnerFile = JSON.parse(await readFile(path.join(target, ".runner"), "utf8"));
      assert.equal(runnerFile.agentName, "solstice-classic");
      assert.equal(runnerFile.poolId, 1);
      assert.equal(runnerFile.useV2Flow, false);
      assert.equal(runnerFile.gitHubUrl, `${gh.url}/acme/app`);
      assert.deepEqual(runnerFile.solsticeLabels, [`omnios:vm:${LABEL}`]);
      const credentials = JSON.parse(await readFile(path.join(target, ".credentials"), "utf8"));
      assert.equal(credentials.scheme, "OAuth");
      assert.equal(credentials.data.requireFipsCryptography, "False");
      const params = JSON.parse(await readFile(path.join(target, ".credentials_rsaparams"), "utf8"));
      assert.deepEqual(Object.keys(params).sort(), ["d", "dp", "dq", "exponent", "inverseQ", "modulus", "p", "q"]);
      const known = gh.runners.get(reg.settings.agentId);
      assert.deepEqual(
        known?.labels.map((l) => `${l.name}/${l.type}`),
        ["self-hosted/system", "Linux/system", "X64/system", "omnios/user"],
      );
      const registered = known?.publicKey.export({ format: "jwk" });
      assert.equal(Buffer.from(registered?.n ?? "", "base64url").toString("base64"), params.modulus);
      for (const secret of [params.d, params.p, params.q, params.modulus])
        assert.ok(!text().includes(secret), "no key material in the log");
      assert.match(text(), /runner registered/);
    });

    test("register refuses an unknown token with what to do, and a directory that already holds a runner", async () => {
      await assert.rejects(
        registerRunner({
          url: `${gh.url}/acme/app`,
          token: "AAEXPIRED",
          name: "x",
          labels: ["omnios"],
          dir: path.join(dir),
          log: silent,
        }),
        /registration_refused.*take a new one/,
      );
      await assert.rejects(
        registerRunner({
          url: `${gh.url}/acme/app`,
          token: gh.addRegistrationToken(`${gh.url}/acme/app`),
          name: "y",
          labels: ["omnios"],
          dir: classicDir(),
          log: silent,
        }),
        /already_configured/,
      );
      await assert.rejects(
        registerRunner({
          url: `${gh.url}/acme/app`,
          token: "t",
          name: "z",
          labels: ["a:vm:one", "b:vm:two"],
          dir,
          log: silent,
        }),
        /one runner per fleet label/,
      );
    });

    test("a job's steps, live lines, logs and conclusion reach GitHub's timeline; a printed secret arrives masked", async () => {
      daemon = await startDaemon({
        config: fastConfig(classicDir(), namespace),
        registration: await readRegistration(classicDir()),
        bus,
        log: silent,
        keyring,
      });
      const runner = gh.runnerByName("solstice-classic");
      assert.ok(runner);
      const job = gh.queueJob(runner.id, {
        secrets: { DEPLOY_KEY: "hunter2-very-secret" },
        outputs: { greeting: `\${{ steps.hello.outputs.text }}` },
        steps: [
          { run: "echo one-a\necho one-b", name: "first" },
          { run: "echo two", name: "second", id: "hello", env: { SECRET_VALUE: `\${{ secrets.DEPLOY_KEY }}` } },
          { run: "echo three", name: "third" },
        ],
      });
      await gh.waitFor(() => job.state === "completed", 30_000, "the job's completion");
      const [first, second, third] = job.stepIds;
      assert.deepEqual(gh.liveLines(job, first ?? ""), ["one-a", "one-b"]);
      assert.deepEqual(gh.liveLines(job, second ?? ""), ["SECRET_VALUE=***", "two"]);
      assert.deepEqual(gh.liveLines(job, third ?? ""), ["three"]);
      const records = recordsOf(job);
      assert.deepEqual(
        records.map((r) => `${r?.name} ${r?.state}/${r?.result}`),
        ["first completed/succeeded", "second completed/succeeded", "third completed/succeeded"],
      );
      for (const r of records) {
        assert.ok(
          r?.startTime && r.finishTime && Date.parse(r.finishTime) >= Date.parse(r.startTime),
          "each step has its times",
        );
        // States only move forward; a step shorter than one report interval may skip inProgress.
        assert.deepEqual(
          r?.history,
          ["pending", "inProgress", "completed/succeeded"].filter((h) => r?.history.includes(h)),
        );
        assert.equal(r?.history.at(-1), "completed/succeeded");
      }
      assert.equal(job.completion?.conclusion, "succeeded");
      assert.deepEqual(job.completion?.outputs, { greeting: "value-of-greeting" });
      const uploaded = [...gh.jobs.values()].length > 0 ? records.map((r) => r?.logId) : [];
      assert.ok(
        uploaded.every((id) => typeof id === "number"),
        "every step's log was uploaded",
      );
      const everything = JSON.stringify([...job.live.values()].map((m) => [...m.values()])) + JSON.stringify(gh.calls);
      assert.doesNotMatch(everything, /hunter2/);
      assert.ok(job.renewals >= 1, "the job's lock was renewed");
    });

    test("an unsupported uses: fails at once with the reason in the log, and nothing reaches the fleet", async () => {
      const before = host.received.length;
      const runner = gh.runnerByName("solstice-classic");
      assert.ok(runner);
      const job = gh.queueJob(runner.id, { steps: [{ run: "echo a" }, { uses: "actions/github-script@v7" }] });
      await gh.waitFor(() => job.state === "completed", 15_000, "the refused job's completion");
      assert.equal(job.completion?.conclusion, "failed");
      const setupLines = [...job.live.values()].flatMap((m) => [...m.values()]).join("\n");
      assert.match(setupLines, /action actions\/github-script@v7 is not supported/);
      assert.match(setupLines, /no VM was booted/);
      assert.equal(host.received.length, before, "no JobRequest was published");
      assert.deepEqual(
        recordsOf(job).map((r) => r?.result),
        ["skipped", "skipped"],
      );
    });

    test("a 401 makes the runner take a new token and go on", async () => {
      gh.revokeAccessTokens();
      const from = gh.calls.length;
      await gh.waitFor(
        () =>
          gh.calls.slice(from).some((c) => c.status === 401) &&
          gh.calls.slice(from).some((c) => c.path === "/oauth/token" && c.status === 200),
        15_000,
        "a 401 then a new token",
      );
      const runner = gh.runnerByName("solstice-classic");
      assert.ok(runner);
      const job = gh.queueJob(runner.id, { steps: [{ run: "echo after-reauth" }] });
      await gh.waitFor(() => job.state === "completed", 20_000, "a job after the new token");
      assert.equal(job.completion?.conclusion, "succeeded");
      assert.equal(daemon.listening, true);
    });

    test("5xx and 429 answers are retried after a backoff (Retry-After honoured), never in a tight loop", async () => {
      const from = gh.calls.length;
      gh.failNext(/\/messages$/, 503, 3);
      gh.failNext(/\/messages$/, 429, 1, { "Retry-After": "1" });
      await gh.waitFor(
        () => gh.calls.slice(from).filter((c) => c.status === 503 || c.status === 429).length === 4,
        20_000,
        "the injected failures",
      );
      const failures = gh.calls.slice(from).filter((c) => /\/messages$/.test(c.path) && c.status >= 400);
      for (let i = 1; i < failures.length; i++) {
        const gap = (failures[i]?.at ?? 0) - (failures[i - 1]?.at ?? 0);
        // The first wait is errorBackoffMs (200) less up to 20 % jitter; none may come sooner.
        assert.ok(gap >= 155, `retry ${i} came ${gap} ms after the failure before it`);
      }
      const runner = gh.runnerByName("solstice-classic");
      assert.ok(runner);
      const job = gh.queueJob(runner.id, { steps: [{ run: "echo after-errors" }] });
      await gh.waitFor(() => job.state === "completed", 20_000, "a job after the errors");
      const calls = gh.calls.slice(from).filter((c) => /\/messages$/.test(c.path));
      const i429 = calls.findIndex((c) => c.status === 429);
      assert.ok((calls[i429 + 1]?.at ?? 0) - (calls[i429]?.at ?? 0) >= 950, "Retry-After: 1 was honoured");
    });

    test("an expired session is replaced and jobs keep coming", async () => {
      const sessionsBefore = gh.calls.filter((c) => /\/sessions$/.test(c.path) && c.status === 200).length;
      gh.expireSessions();
      await gh.waitFor(
        () => gh.calls.filter((c) => /\/sessions$/.test(c.path) && c.status === 200).length > sessionsBefore,
        15_000,
        "a new session",
      );
      const runner = gh.runnerByName("solstice-classic");
      assert.ok(runner);
      const job = gh.queueJob(runner.id, {
        steps: [{ run: "echo new-session" }, { run: "exit 3" }, { run: "echo never" }],
      });
      await gh.waitFor(() => job.state === "completed", 20_000, "the job on the new session");
      assert.equal(job.completion?.conclusion, "failed");
      assert.deepEqual(
        recordsOf(job).map((r) => r?.result),
        ["succeeded", "failed", "skipped"],
      );
    });
  });

  describe("broker flow (runner-admin registration, run service, Results)", () => {
    let daemon: Daemon;
    after(() => daemon?.stop(5000));

    test("a job is acquired, renewed, reported through Results and the live socket, and completed with step results", async () => {
      const target = path.join(dir, "broker");
      await (await import("node:fs/promises")).mkdir(target);
      const reg = await registerRunner({
        url: `${gh.url}/acme`,
        token: gh.addRegistrationToken(`${gh.url}/acme`, { useV2Flow: true }),
        name: "solstice-broker",
        labels: [`omnios:vm:${LABEL}`],
        runnerGroup: "omnios",
        dir: target,
        log: silent,
      });
      assert.equal(reg.settings.useV2Flow, true);
      assert.equal(reg.settings.serverUrlV2, `${gh.url}/broker/`);
      assert.equal(reg.settings.poolId, 2);
      daemon = await startDaemon({
        config: fastConfig(target, namespace),
        registration: reg,
        bus,
        log: silent,
        keyring,
      });
      // The broker hands a job out once: an acquire that fails on a 5xx is retried, not dropped.
      gh.failNext(/\/run\/acquirejob$/, 503, 2);
      const job = gh.queueJob(reg.settings.agentId, {
        secrets: { TOKEN: "s3cr3t-broker-value" },
        steps: [
          { run: "echo alpha", name: "alpha" },
          { run: "echo beta", name: "beta", env: { T: `\${{ secrets.TOKEN }}` } },
          { run: "echo gamma\nsleep 1", name: "gamma" },
        ],
      });
      await gh.waitFor(() => gh.liveLines(job, job.stepIds[2] ?? "").includes("gamma"), 30_000, "gamma's live line");
      gh.cancelJob(job.jobId);
      await gh.waitFor(() => job.state === "completed", 20_000, "the cancelled job's completion");
      assert.equal(job.completion?.conclusion, "canceled");
      assert.deepEqual(gh.liveLines(job, job.stepIds[1] ?? ""), ["T=***", "beta"]);
      const results = recordsOf(job).map((r) => r?.result);
      assert.deepEqual(results, ["succeeded", "succeeded", "canceled"]);
      const stepResults = job.completion?.stepResults as { external_id: string; conclusion: string; number: number }[];
      assert.deepEqual(
        job.stepIds.map((id) => stepResults.find((s) => s.external_id === id)?.conclusion),
        ["succeeded", "succeeded", "canceled"],
      );
      assert.match(job.logs.get(job.stepIds[0] ?? "") ?? "", /^\d{4}-\d\d-\d\dT[\d:.]+Z alpha$/m);
      assert.match(job.jobLog ?? "", /beta/);
      assert.doesNotMatch(
        JSON.stringify([...job.logs.values(), job.jobLog, ...job.live.values()].map(String)) + (job.jobLog ?? ""),
        /s3cr3t/,
      );
      assert.ok(job.renewals >= 1);
      assert.ok(
        gh.calls.some((c) => c.path === "/broker/acknowledge" && c.status === 200),
        "the job was acknowledged",
      );
      assert.deepEqual(
        gh.calls.filter((c) => c.path === "/run/acquirejob").map((c) => c.status),
        [503, 503, 200],
      );
    });
  });

  test("a JIT config runs one job with no files written, then the runner exits", async () => {
    gh.addPat("ghp_jit");
    const res = await fetch(`${gh.url}/api/v3/orgs/acme/actions/runners/generate-jitconfig`, {
      method: "POST",
      headers: { Authorization: "Bearer ghp_jit", "Content-Type": "application/json" },
      body: JSON.stringify({ name: "jit-one", runner_group_id: 1, labels: ["omnios"] }),
    });
    const { encoded_jit_config: encoded, runner } = (await res.json()) as {
      encoded_jit_config: string;
      runner: { id: number };
    };
    const registration = decodeJitConfig(encoded, [`omnios:vm:${LABEL}`]);
    assert.equal(registration.settings.agentId, runner.id);
    assert.equal(registration.settings.useV2Flow, true);
    assert.equal(registration.credentials.requireFipsCryptography, true);
    const daemon = await startDaemon({
      config: fastConfig(path.join(dir, "nowhere"), namespace),
      registration,
      bus,
      log: silent,
    });
    const job = gh.queueJob(runner.id, { steps: [{ run: "echo jit" }] });
    const end = await daemon.done;
    await daemon.stop(1000);
    assert.equal(end.reason, "ephemeral_done");
    assert.equal(job.completion?.conclusion, "succeeded");
    await assert.rejects(stat(path.join(dir, "nowhere")), "no files were written");
  });

  test("a client assertion signed with the wrong key is refused by GitHub and the runner says why", async () => {
    const target = path.join(dir, "wrong-key");
    await (await import("node:fs/promises")).mkdir(target);
    await registerRunner({
      url: `${gh.url}/acme/app`,
      token: gh.addRegistrationToken(`${gh.url}/acme/app`),
      name: "solstice-wrong-key",
      labels: ["omnios"],
      dir: target,
      log: silent,
    });
    await writeFile(path.join(target, ".credentials_rsaparams"), JSON.stringify(toRsaParams(generateRunnerKey())));
    const from = gh.calls.length;
    const daemon = await startDaemon({
      config: fastConfig(target, namespace),
      registration: await readRegistration(target),
      bus,
      log: silent,
    });
    const end = await daemon.done;
    await daemon.stop(1000);
    assert.equal(end.reason, "fatal");
    assert.match(
      end.error?.message ?? "",
      /credentials_refused.*signature does not verify against the runner's registered public key.*register again/,
    );
    assert.ok(gh.calls.slice(from).some((c) => c.path === "/oauth/token" && c.status === 401));
  });

  test("remove deletes the runner in GitHub (classic and runner-admin) and its local files", async () => {
    for (const v2 of [false, true]) {
      const target = path.join(dir, `removed-${v2}`);
      const reg = await registerRunner({
        url: `${gh.url}/acme/app`,
        token: gh.addRegistrationToken(`${gh.url}/acme/app`, { useV2Flow: v2 }),
        name: `solstice-removed-${v2}`,
        labels: ["omnios"],
        dir: target,
        log: silent,
      });
      await assert.rejects(removeRunner({ dir: target, token: "ARWRONG", log: silent }), /registration_refused/);
      await removeRunner({
        dir: target,
        token: gh.addRemoveToken(`${gh.url}/acme/app`, { useV2Flow: v2 }),
        log: silent,
      });
      assert.equal(gh.runners.get(reg.settings.agentId)?.deleted, true, `deleted in GitHub (v2: ${v2})`);
      await assert.rejects(stat(path.join(target, ".credentials_rsaparams")), "the key file is gone");
    }
  });

  test("a runner deleted in GitHub stops with the reason instead of retrying forever", async () => {
    const target = path.join(dir, "deleted");
    await (await import("node:fs/promises")).mkdir(target);
    const reg = await registerRunner({
      url: `${gh.url}/acme/app`,
      token: gh.addRegistrationToken(`${gh.url}/acme/app`),
      name: "solstice-deleted",
      labels: ["omnios"],
      dir: target,
      log: silent,
    });
    const daemon = await startDaemon({ config: fastConfig(target, namespace), registration: reg, bus, log: silent });
    await gh.waitFor(() => daemon.listening, 10_000, "the daemon listening");
    gh.deleteRunner(reg.settings.agentId);
    const end = await daemon.done;
    await daemon.stop(1000);
    assert.equal(end.reason, "fatal");
    assert.match(end.error?.message ?? "", /runner_deleted|credentials_refused/);
    assert.match(end.error?.message ?? "", /register/);
  });
});
