import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type Daemon, githubRunnerConfigSchema, registerRunner, startDaemon } from "@solstice/github-runner";
import { FleetKeyring, generateFleetKey, parseFleetKeys } from "@solstice/protocol";
import { pino } from "pino";
import { type FakeGitHub, type FakeJob, startFakeGitHub } from "./fakes/github/fake-github.ts";
import { bundleAction, nodeActionManifest } from "./support/bundled-action.ts";
import { AMQP_URL, startTestFleet, type TestFleet } from "./support/fleet.ts";
import { OutsideNetwork } from "./support/outside-network.ts";

// GitHub's hosted artifacts and caches, end to end: the fake GitHub (with the results service's
// artifacts and cache v2) behind a relay on "the internet" (support/outside-network.ts), this
// runner, the real RabbitMQ/PostgreSQL and an orchestrator with tiny TCG guests. Job 1 uploads an
// artifact and saves a cache with test actions bundled from @actions/artifact and @actions/cache;
// job 2, of the same run, downloads the artifact and restores the cache by its exact key and by a
// restore-key prefix, on another VM. Two VMs. The actions are published on the fake GitHub and
// resolved through its action download info, as GitHub's runner does (the host downloads them;
// the guest never fetches them).

const logLines: string[] = [];
const log = pino({ level: "debug" }, { write: (line: string) => logLines.push(line) });
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("githubresults")));

const SUMS = /^[0-9a-f]{64} {2}(report\.txt|sub\/data\.txt|deps\/lib\.txt)$/;

describe("artifacts and caches through GitHub (2 tiny VMs, TCG)", { timeout: 720_000 }, () => {
  const outside = new OutsideNetwork();
  let gh: FakeGitHub;
  let fleet: TestFleet;
  let daemon: Daemon;
  let runnerId = 0;
  let dir: string;

  before(async () => {
    outside.start();
    gh = await startFakeGitHub({
      pollHoldMs: 2000,
      lockMs: 30_000,
      host: outside.hostAddress,
      publicHost: outside.address,
    });
    await outside.relay(Number(new URL(gh.url).port));
    for (const [name, source, inputs] of [
      ["artifact", "artifact-action.ts", { mode: undefined, name: undefined, path: undefined }],
      ["cache", "cache-action.ts", { mode: undefined, key: undefined, "restore-keys": "", path: undefined }],
    ] as const) {
      await gh.publishAction(
        `solstice-test/${name}`,
        {
          "action.yml": nodeActionManifest(name, inputs),
          "dist/index.js": await bundleAction(path.join(import.meta.dirname, "support/actions", source)),
        },
        ["v1"],
      );
    }
    fleet = await startTestFleet("tiny=1", { keyring, log });
    dir = await mkdtemp(path.join(tmpdir(), "solstice-github-results-"));
    const reg = await registerRunner({
      url: `${gh.url}/acme/app`,
      token: gh.addRegistrationToken(`${gh.url}/acme/app`, { useV2Flow: true }),
      name: "solstice-results",
      labels: ["solstice-tiny:vm:tiny"],
      dir,
      log,
    });
    runnerId = reg.settings.agentId;
    daemon = await startDaemon({
      config: githubRunnerConfigSchema.parse({
        runnerDir: dir,
        namespace: fleet.namespace,
        amqpUrl: AMQP_URL,
        pollTimeoutMs: 10_000,
        reportIntervalMs: 250,
        renewIntervalMs: 1000,
        errorBackoffMs: 500,
        sessionRetryMs: 500,
      }),
      registration: reg,
      bus: fleet.bus,
      log,
      keyring,
    });
  });
  after(async () => {
    await daemon?.stop(5000);
    await fleet?.close();
    await gh?.close();
    outside.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const lines = (job: FakeJob) => job.stepIds.flatMap((id) => gh.liveLines(job, id));
  const completed = async (job: FakeJob) => {
    try {
      await gh.waitFor(() => job.state === "completed", 300_000, `job ${job.jobId}'s completion`);
    } catch (error) {
      throw new Error(`${(error as Error).message}; its lines so far:\n${lines(job).slice(-80).join("\n")}`);
    }
    const text = lines(job);
    assert.equal(job.completion?.conclusion, "succeeded", text.join("\n"));
    return text;
  };

  test("job 2 downloads job 1's artifact and restores its cache by exact key and by restore-key prefix", async () => {
    const github = { repository: "acme/app" };
    const first = gh.queueJob(runnerId, {
      github,
      cacheServiceV2: true,
      steps: [
        {
          name: "make the files",
          run: [
            'mkdir -p out/sub deps && echo "hello from job 1" > out/report.txt',
            "head -c 60000 /dev/urandom | od -x > out/sub/data.txt",
            "head -c 60000 /dev/urandom | od -x > deps/lib.txt",
            "(cd out && sha256sum report.txt sub/data.txt) && sha256sum deps/lib.txt",
            `echo "run step sees: \${ACTIONS_RUNTIME_TOKEN:-no token} \${ACTIONS_RESULTS_URL:-no results url}"`,
          ].join("\n"),
        },
        { uses: "solstice-test/artifact@v1", with: { mode: "upload", name: "report", path: "out" } },
        { uses: "solstice-test/cache@v1", with: { mode: "save", key: "deps-linux-v1", path: "deps" } },
      ],
    });
    const one = await completed(first);
    assert.ok(one.includes("run step sees: no token no results url"), one.join("\n"));
    assert.ok(
      one.some((l) => /^saved deps-linux-v1 id=\d+$/.test(l)),
      one.join("\n"),
    );
    const made = one.filter((l) => SUMS.test(l));
    assert.equal(made.length, 3, one.join("\n"));

    const second = gh.queueJob(runnerId, {
      github,
      cacheServiceV2: true,
      sameRunAs: first.jobId,
      steps: [
        { uses: "solstice-test/artifact@v1", with: { mode: "download", name: "report", path: "got" } },
        { id: "exact", uses: "solstice-test/cache@v1", with: { mode: "restore", key: "deps-linux-v1", path: "deps" } },
        { name: "sums", run: "(cd got && sha256sum report.txt sub/data.txt) && sha256sum deps/lib.txt && rm -r deps" },
        {
          id: "prefix",
          uses: "solstice-test/cache@v1",
          with: { mode: "restore", key: "deps-linux-v2", "restore-keys": "deps-linux-", path: "deps" },
        },
        {
          name: "matched",
          run: `sha256sum deps/lib.txt; echo "exact=\${{ steps.exact.outputs.matched-key }} prefix=\${{ steps.prefix.outputs.matched-key }}"`,
        },
      ],
    });
    const two = await completed(second);
    const got = two.filter((l) => SUMS.test(l));
    const lib = made.find((l) => l.endsWith("deps/lib.txt"));
    assert.deepEqual(got, [...made, lib], "the artifact's files and the cache's file, twice, as job 1 made them");
    assert.ok(two.includes("exact=deps-linux-v1 prefix=deps-linux-v1"), two.join("\n"));
    assert.ok(two.includes("restored deps-linux-v1"));

    const calls = gh.results.calls.map((c) => `${c.method}:${c.status}`);
    for (const method of [
      "CreateArtifact",
      "FinalizeArtifact",
      "ListArtifacts",
      "GetSignedArtifactURL",
      "CreateCacheEntry",
      "FinalizeCacheEntryUpload",
      "GetCacheEntryDownloadURL",
    ]) {
      assert.ok(calls.includes(`${method}:200`), `${method} was called: ${calls.join(", ")}`);
    }
    assert.ok(
      gh.results.calls.every((c) => c.status === 200),
      calls.join(", "),
    );
    const tokens = [first.jobToken, second.jobToken];
    const everything = JSON.stringify([...first.live.values(), ...second.live.values()].map((m) => [...m.values()]));
    for (const token of tokens) {
      assert.equal(everything.includes(token), false, "the runtime token is in no line GitHub got");
      assert.equal(logLines.join("").includes(token), false, "nor in a log line of the runner or the orchestrator");
    }
  });
});
