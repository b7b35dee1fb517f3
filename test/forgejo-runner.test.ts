import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { Bus } from "@solstice/bus";
import { type Daemon, forgejoRunnerConfigSchema, Result, registerRunner, startDaemon } from "@solstice/forgejo-runner";
import {
  checkoutTokenContext,
  FleetKeyring,
  generateFleetKey,
  type JobRequest,
  JobRequestSchema,
  parseFleetKeys,
  toBinary,
  toJson,
} from "@solstice/protocol";
import { pino } from "pino";
import { type FakeForgejo, startFakeForgejo } from "./fakes/forgejo/fake-forgejo.ts";
import { freshActionCache } from "./support/action-cache.ts";
import { startTestFleet, type TestFleet } from "./support/fleet.ts";
import { type GitHttpServer, startGitHttpServer } from "./support/git-http-server.ts";

// A fake Forgejo, this runner, the real RabbitMQ/PostgreSQL and an orchestrator with tiny TCG guests.
// Actions come from a git server on loopback, the instance's default actions URL: the first job
// uses one as `owner/name@ref` (fetched by the VM host into an empty cache), a later one as a full
// URL reference to the same repository (from the host's cache).

/** Every log line of the runner and the orchestrator, at debug level, to prove no secret is in one. */
const logLines: string[] = [];
const log = pino({ level: "debug" }, { write: (line: string) => logLines.push(line) });

/** The fleet's bus, with each JobRequest the runner publishes kept for inspection. */
function recordingBus(bus: Bus, published: JobRequest[]): Bus {
  return new Proxy(bus, {
    get(target, property) {
      if (property === "publishJob") {
        return (job: JobRequest) => {
          published.push(job);
          return target.publishJob(job);
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

// A JavaScript action using Node built-ins only.
const HELLO_ACTION = {
  "action.yml": "name: hello\ninputs:\n  who:\n    default: World\nruns:\n  using: node20\n  main: index.js\n",
  "index.js": 'console.log("hello from the action, " + process.env.INPUT_WHO);\n',
};

const THREE_STEPS = `name: ci
jobs:
  build:
    name: build
    runs-on: solstice-tiny
    steps:
      - name: first
        run: echo one-a; echo one-b
      - name: second
        env:
          SECRET_VALUE: \${{ secrets.DEPLOY_KEY }}
        run: echo "two $SECRET_VALUE"
      - name: third
        run: echo three
`;

describe("forgejo-runner end to end", { timeout: 900_000 }, () => {
  let forge: FakeForgejo;
  let fleet: TestFleet;
  let daemon: Daemon;
  let dir: string;
  let git: GitHttpServer;
  let actionCache: Awaited<ReturnType<typeof freshActionCache>>;
  const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("forgejotest")));
  const published: JobRequest[] = [];

  before(async () => {
    git = await startGitHttpServer();
    await git.publish("solstice-test/hello", HELLO_ACTION, ["v1"]);
    forge = await startFakeForgejo({ defaultActionsUrl: git.url });
    forge.addRegistrationToken("registration-token");
    actionCache = await freshActionCache();
    fleet = await startTestFleet("tiny=1", { keyring, log, env: { SOLSTICE_ACTIONS_CACHE: actionCache.dir } });
    dir = await mkdtemp(path.join(tmpdir(), "solstice-forgejo-"));
  });
  after(async () => {
    await daemon?.stop(5000);
    await fleet?.close();
    await forge?.close();
    await git?.close();
    await actionCache?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("register writes a .runner file like the official runner's, mode 0600", async () => {
    const file = path.join(dir, ".runner");
    const runner = await registerRunner({
      instance: `${forge.url}/`,
      token: "registration-token",
      name: "solstice-test",
      labels: ["solstice-tiny:vm:tiny"],
      file,
    });
    const written = JSON.parse(await readFile(file, "utf8"));
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(Object.keys(written), ["WARNING", "id", "uuid", "name", "token", "address", "labels"]);
    assert.equal(written.uuid, runner.uuid);
    assert.equal(written.address, forge.url);
    assert.deepEqual(written.labels, ["solstice-tiny:vm:tiny"]);
    assert.deepEqual(forge.runners.get(runner.uuid)?.labels, ["solstice-tiny"], "only label names reach the forge");

    daemon = await startDaemon({
      config: forgejoRunnerConfigSchema.parse({
        runnerFile: file,
        namespace: fleet.namespace,
        capacity: 1,
        fetchIntervalMs: 200,
        reportIntervalMs: 300,
      }),
      runner,
      bus: recordingBus(fleet.bus, published),
      log,
      keyring,
    });
  });

  test("a task's output, step ranges and result land in the forge, secrets masked; its JavaScript action comes from the instance's default actions URL, fetched by the host", async () => {
    const jobId = forge.queueJob({
      workflow: `${THREE_STEPS}      - uses: solstice-test/hello@v1\n        with:\n          who: Forgejo\n`,
      secrets: { DEPLOY_KEY: "hunter2-very-secret" },
    });
    await forge.waitFor(() => forge.taskOfJob(jobId)?.logArchived === true, 420_000, "the task's log archived");
    const task = forge.taskOfJob(jobId);
    assert.ok(task);
    await forge.waitFor(() => task.result !== Result.UNSPECIFIED, 10_000, "the task's result");
    const lines = task.log.map((l) => l.content);
    const all = lines.join("\n");
    assert.equal(task.result, Result.SUCCESS, all);
    assert.doesNotMatch(all, /hunter2/, "the secret never reaches the forge");
    assert.ok(lines.includes("two ***"), all);
    const range = (i: number) => {
      const step = task.steps[i];
      assert.ok(step);
      return lines.slice(Number(step.logIndex), Number(step.logIndex + step.logLength));
    };
    assert.deepEqual(range(0), ["one-a", "one-b"]);
    assert.deepEqual(range(1), ["two ***"]);
    assert.deepEqual(range(2), ["three"]);
    assert.ok(range(3).includes("hello from the action, Forgejo"), all);
    assert.deepEqual(
      task.steps.map((s) => s.result),
      [Result.SUCCESS, Result.SUCCESS, Result.SUCCESS, Result.SUCCESS],
    );
    assert.match(all, /Action solstice-test\/hello@v1: solstice-test\/hello@[0-9a-f]{12} \(node20\), downloaded/);
    assert.equal(git.packFetches("solstice-test/hello"), 1, "the host fetched the action once");
    assert.equal(lines.filter((l) => l === "one-a").length, 1, "no row is duplicated");
  });

  test("the task's forge token reaches the JobRequest sealed, and never in plain text there, in a log or in the forge", () => {
    const task = [...forge.tasks.values()][0];
    assert.ok(task);
    const request = published.find((r) => r.jobName === "build");
    assert.ok(request, "the runner published the job");
    assert.ok(request.checkoutToken, "the checkout token travels with the job");
    assert.equal(keyring.unseal(request.checkoutToken, checkoutTokenContext(request.jobId)), task.token);
    const wire = Buffer.from(toBinary(JobRequestSchema, request));
    const text = JSON.stringify(toJson(JobRequestSchema, request));
    for (const secret of [task.token, "hunter2-very-secret"]) {
      assert.equal(wire.includes(secret), false, "not in the message on the broker");
      assert.equal(text.includes(secret), false, "not in any field, contexts included");
      assert.equal(logLines.join("").includes(secret), false, "not in a log line of the runner or the orchestrator");
      assert.equal(forge.logText(task.id).includes(secret), false, "not in the forge's log");
    }
    const all = logLines.join("");
    assert.ok(all.includes('"msg":"task received"'), "the runner's log was captured");
    assert.ok(all.includes('"msg":"job accepted"'), "the orchestrator's log was captured");
  });

  test("a workflow with an unsupported uses: fails at once with the reason in the log", async () => {
    const jobId = forge.queueJob({
      workflow: THREE_STEPS.replace("run: echo three", "uses: docker://alpine:3.20"),
    });
    await forge.waitFor(() => forge.taskOfJob(jobId)?.result === Result.FAILURE, 20_000, "the refused task's result");
    const task = forge.taskOfJob(jobId);
    const all = task?.log.map((l) => l.content).join("\n") ?? "";
    assert.match(all, /docker:\/\/alpine/);
    assert.doesNotMatch(all, /accepted by/, "no host ever took the job");
    assert.deepEqual(
      task?.steps.map((s) => s.result),
      [Result.SKIPPED, Result.SKIPPED, Result.SKIPPED],
      "steps that never ran are skipped, not cancelled",
    );
  });

  test("a failing step marks the task failed; the same action as a full URL reference comes from the host's cache", async () => {
    const jobId = forge.queueJob({
      workflow: THREE_STEPS.replace(
        "      - name: first\n",
        `      - uses: ${git.url}/solstice-test/hello@v1\n        with:\n          who: full-url\n      - name: first\n`,
      ).replace("run: echo three", "run: echo bad; exit 3"),
      secrets: { DEPLOY_KEY: "x-secret-x" },
    });
    await forge.waitFor(() => forge.taskOfJob(jobId)?.logArchived === true, 420_000, "the failed task's log");
    const task = forge.taskOfJob(jobId);
    await forge.waitFor(() => task?.result !== Result.UNSPECIFIED, 10_000, "the failed task's result");
    const all = task?.log.map((l) => l.content).join("\n") ?? "";
    assert.equal(task?.result, Result.FAILURE, all);
    assert.deepEqual(
      task?.steps.map((s) => s.result),
      [Result.SUCCESS, Result.SUCCESS, Result.SUCCESS, Result.FAILURE],
    );
    assert.match(all, /hello from the action, full-url/);
    assert.match(
      all,
      /Action http:\/\/127\.0\.0\.1:\d+\/solstice-test\/hello@v1: solstice-test\/hello@[0-9a-f]{12} \(node20\), from the host's cache/,
    );
    assert.equal(git.packFetches("solstice-test/hello"), 1, "no second download");
  });

  test("a task cancelled in the forge stops its job within seconds", async () => {
    const jobId = forge.queueJob({
      workflow: THREE_STEPS.replace("run: echo three", "run: echo sleeping; sleep 300"),
      secrets: { DEPLOY_KEY: "x-secret-x" },
    });
    await forge.waitFor(
      () => forge.taskOfJob(jobId)?.log.some((l) => l.content === "sleeping") === true,
      120_000,
      "the sleeping step's output",
    );
    const task = forge.taskOfJob(jobId);
    assert.ok(task);
    const cancelledAt = Date.now();
    forge.cancel(task.id);
    await forge.waitFor(() => task.logArchived, 30_000, "the cancelled task's final log");
    await forge.waitFor(() => daemon.active === 0, 30_000, "the runner's slot freed");
    assert.ok(Date.now() - cancelledAt < 30_000);
    assert.equal(task.result, Result.CANCELLED);
    assert.match(task.log.map((l) => l.content).join("\n"), /cancelled in the forge/);
  });
});
