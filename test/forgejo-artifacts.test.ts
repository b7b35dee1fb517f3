import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { Bus } from "@solstice/bus";
import { type Daemon, forgejoRunnerConfigSchema, Result, registerRunner, startDaemon } from "@solstice/forgejo-runner";
import {
  FleetKeyring,
  generateFleetKey,
  type JobRequest,
  JobRequestSchema,
  parseFleetKeys,
  runtimeTokenContext,
  toBinary,
} from "@solstice/protocol";
import { pino } from "pino";
import { type FakeForgejo, startFakeForgejo } from "./fakes/forgejo/fake-forgejo.ts";
import { bundleAction, cacheTestAction, nodeActionManifest } from "./support/bundled-action.ts";
import { startTestFleet, type TestFleet } from "./support/fleet.ts";
import { type GitHttpServer, startGitHttpServer } from "./support/git-http-server.ts";
import { OutsideNetwork } from "./support/outside-network.ts";

// Artifacts and caches through Forgejo, end to end: the fake Forgejo (with its artifacts v4
// service) behind a relay on "the internet" (support/outside-network.ts), this runner, the real
// RabbitMQ/PostgreSQL and an orchestrator with tiny TCG guests and its host's job cache (Forgejo
// serves no cache; docs/decisions/0007). Job 1 uploads with a test action bundled from
// @actions/artifact and saves a cache with one bundled from @actions/cache; job 2, which needs
// job 1, downloads the artifact and restores the cache by exact key and by a restore-key prefix,
// on another VM. Two VMs.

const logLines: string[] = [];
const log = pino({ level: "debug" }, { write: (line: string) => logLines.push(line) });
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("artifactstest")));

const UPLOAD = `name: ci
jobs:
  build:
    runs-on: solstice-tiny
    steps:
      - name: make the report
        run: |
          mkdir -p out/sub && echo "hello from job 1" > out/report.txt
          head -c 60000 /dev/urandom | od -x > out/sub/data.txt
          (cd out && sha256sum report.txt sub/data.txt)
          mkdir -p deps && head -c 60000 /dev/urandom | od -x > deps/lib.txt && sha256sum deps/lib.txt
          echo "run step sees the runtime token: \${ACTIONS_RUNTIME_TOKEN:-no}"
      - uses: solstice-test/artifact@v1
        with:
          mode: upload
          name: report
          path: out
      - uses: solstice-test/cache@v1
        with: { mode: save, key: deps-linux-v1, path: deps }
`;

const DOWNLOAD = `name: ci
jobs:
  check:
    runs-on: solstice-tiny
    needs: build
    steps:
      - uses: solstice-test/artifact@v1
        with:
          mode: download
          name: report
          path: got
      - name: compare
        run: cd got && sha256sum report.txt sub/data.txt
      - id: exact
        uses: solstice-test/cache@v1
        with: { mode: restore, key: deps-linux-v1, path: deps }
      - run: sha256sum deps/lib.txt && rm -r deps
      - id: prefix
        uses: solstice-test/cache@v1
        with: { mode: restore, key: deps-linux-v2, restore-keys: deps-linux-, path: deps }
      - run: |
          sha256sum deps/lib.txt
          echo "exact=\${{ steps.exact.outputs.matched-key }} prefix=\${{ steps.prefix.outputs.matched-key }}"
`;

describe("artifacts through Forgejo (2 tiny VMs, TCG)", { timeout: 900_000 }, () => {
  const outside = new OutsideNetwork();
  let forge: FakeForgejo;
  let git: GitHttpServer;
  let fleet: TestFleet;
  let daemon: Daemon;
  let dir: string;
  const published: JobRequest[] = [];

  before(async () => {
    outside.start();
    git = await startGitHttpServer();
    await git.publish(
      "solstice-test/artifact",
      {
        "action.yml": nodeActionManifest("artifact", { mode: undefined, name: undefined, path: undefined }),
        "dist/index.js": await bundleAction(path.join(import.meta.dirname, "support/actions/artifact-action.ts")),
      },
      ["v1"],
    );
    await git.publish("solstice-test/cache", await cacheTestAction(), ["v1"]);
    forge = await startFakeForgejo({
      host: outside.hostAddress,
      publicHost: outside.address,
      defaultActionsUrl: git.url,
    });
    await outside.relay(Number(new URL(forge.url).port));
    forge.addRegistrationToken("registration-token");
    fleet = await startTestFleet("tiny=1", { keyring, log, jobCache: true });
    dir = await mkdtemp(path.join(tmpdir(), "solstice-forgejo-artifacts-"));
    const file = path.join(dir, ".runner");
    const runner = await registerRunner({
      instance: `${forge.url}/`,
      token: "registration-token",
      name: "solstice-artifacts",
      labels: ["solstice-tiny:vm:tiny"],
      file,
    });
    const recording = new Proxy(fleet.bus, {
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
    }) as Bus;
    daemon = await startDaemon({
      config: forgejoRunnerConfigSchema.parse({
        runnerFile: file,
        namespace: fleet.namespace,
        capacity: 1,
        fetchIntervalMs: 200,
        reportIntervalMs: 300,
      }),
      runner,
      bus: recording,
      log,
      keyring,
    });
  });
  after(async () => {
    await daemon?.stop(5000);
    await fleet?.close();
    await forge?.close();
    await git?.close();
    outside.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const finished = async (jobId: number) => {
    try {
      await forge.waitFor(() => forge.taskOfJob(jobId)?.logArchived === true, 400_000, `job ${jobId}'s log archived`);
    } catch (error) {
      const lines = forge.taskOfJob(jobId)?.log.map((l) => l.content) ?? [];
      const calls = JSON.stringify(forge.results.calls);
      throw new Error(
        `${(error as Error).message}; results calls ${calls}; the task's log so far:\n${lines.slice(-80).join("\n")}`,
      );
    }
    const task = forge.taskOfJob(jobId);
    assert.ok(task);
    await forge.waitFor(() => task.result !== Result.UNSPECIFIED, 10_000, "the task's result");
    return { task, lines: task.log.map((l) => l.content) };
  };
  const sums = (lines: string[]) => lines.filter((l) => /^[0-9a-f]{64} {2}(report\.txt|sub\/data\.txt)$/.test(l));

  test("an artifact uploaded in job 1 is downloaded in the job that needs it, and its cache restored by exact key and by prefix, on another VM, byte for byte", async () => {
    const first = forge.queueJob({ workflow: UPLOAD });
    const one = await finished(first);
    assert.equal(one.task.result, Result.SUCCESS, one.lines.join("\n"));
    assert.ok(one.lines.includes("run step sees the runtime token: no"), "a run: step never gets the token");
    assert.ok(
      one.lines.some((l) => /^uploaded report id=\d+ size=\d+$/.test(l)),
      one.lines.join("\n"),
    );
    const uploaded = sums(one.lines);
    assert.equal(uploaded.length, 2, one.lines.join("\n"));
    const artifact = forge.results.artifacts.find((a) => a.name === "report");
    assert.ok(artifact?.content, "the forge stored the artifact");
    assert.equal(artifact.runId, String(first));

    // The cache, in the VM host's job cache: saved by job 1, restored twice in job 2 below.
    assert.ok(
      one.lines.some((l) => /^saved deps-linux-v1 id=\d+$/.test(l)),
      one.lines.join("\n"),
    );
    const second = forge.queueJob({
      workflow: DOWNLOAD,
      runId: first,
      needs: { build: { result: Result.SUCCESS } },
    });
    const two = await finished(second);
    assert.equal(two.task.result, Result.SUCCESS, two.lines.join("\n"));
    assert.ok(
      two.lines.some((l) => l.startsWith(`downloaded report id=${artifact.id} `)),
      two.lines.join("\n"),
    );
    assert.deepEqual(sums(two.lines), uploaded, "the downloaded files are the uploaded ones");
    const lib = one.lines.filter((l) => /^[0-9a-f]{64} {2}deps\/lib\.txt$/.test(l));
    assert.equal(lib.length, 1, one.lines.join("\n"));
    assert.deepEqual(
      two.lines.filter((l) => /^[0-9a-f]{64} {2}deps\/lib\.txt$/.test(l)),
      [lib[0], lib[0]],
      two.lines.join("\n"),
    );
    assert.ok(two.lines.includes("exact=deps-linux-v1 prefix=deps-linux-v1"), two.lines.join("\n"));
  });

  test("the runtime token travels sealed, a JWT for the task's run and job, and is in no log, message or forge line", () => {
    const requests = published.filter((r) => r.actionsRuntime?.token);
    assert.equal(requests.length, 2);
    for (const request of requests) {
      const runtime = request.actionsRuntime;
      assert.ok(runtime?.token);
      assert.equal(runtime.resultsUrl, forge.url);
      assert.equal(runtime.runtimeUrl, `${forge.url}/api/actions_pipeline/`);
      const token = keyring.unseal(runtime.token, runtimeTokenContext(request.jobId));
      const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as { scp: string };
      assert.match(claims.scp, /^Actions\.Results:\d+:\d+$/);
      assert.equal(Buffer.from(toBinary(JobRequestSchema, request)).includes(token), false, "not in plain on the bus");
      assert.equal(logLines.join("").includes(token), false, "not in a log line of the runner or the orchestrator");
      for (const task of forge.tasks.values()) assert.equal(forge.logText(task.id).includes(token), false);
    }
    assert.ok(
      forge.results.calls.every((c) => c.status === 200),
      JSON.stringify(forge.results.calls),
    );
  });
});
