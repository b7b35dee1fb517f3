import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DEBUG_SSH_FLAG } from "@solstice/orchestrator";
import type { JobEvent } from "@solstice/protocol";
import { connectSsh, generateJobKeys } from "@solstice/ssh";
import { projectRoot, runCiadm } from "./support/ciadm.ts";
import { AMQP_URL, leftovers, startTestFleet, type TestFleet, tinyJob } from "./support/fleet.ts";

const TTL_MS = 25_000;
const OPTED_IN = "solstice/debug-on";

function failingJob(fleet: TestFleet, repository: string, askForDebug: boolean) {
  const job = tinyJob(fleet.owner, [{ name: "fails", run: "echo about to fail; exit 7" }]);
  job.repository = { $typeName: "solstice.v1.Repository", fullName: repository, url: "", commitSha: "", ref: "" };
  if (askForDebug) job.env[DEBUG_SSH_FLAG] = "true";
  return job;
}

function debugLines(events: JobEvent[]): string[] {
  return events
    .flatMap((e) => (e.body.case === "log" ? e.body.value.lines.map((l) => l.text) : []))
    .filter((t) => t.startsWith("Debug SSH:"));
}

describe("debug SSH into a failed job (tiny guest, TCG)", { timeout: 300_000 }, () => {
  let fleet: TestFleet;
  const operator = generateJobKeys().client;
  const stranger = generateJobKeys().client;
  before(async () => {
    fleet = await startTestFleet("tiny=2", {
      env: {
        SOLSTICE_DEBUG_SSH_REPOS: OPTED_IN,
        SOLSTICE_DEBUG_SSH_KEYS: operator.publicKey,
        SOLSTICE_DEBUG_SSH_TTL_MS: String(TTL_MS),
        SOLSTICE_DEBUG_SSH_HOST: "ci-host.example",
      },
    });
  });
  after(async () => {
    await fleet?.close();
  });

  test("a failed job of a repository that is not opted in is destroyed even when it asks", async () => {
    const events = await fleet.runToEnd(failingJob(fleet, "solstice/other", true));
    assert.match(debugLines(events).join("\n"), /not enabled for solstice\/other/);
    assert.deepEqual(fleet.orchestrator.debug.list(), []);
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] });
  });

  test("an opted-in failed job is kept: only the configured key gets in, one VM per repository, gone at expiry", async () => {
    const first = failingJob(fleet, OPTED_IN, true);
    const events = await fleet.runToEnd(first);
    const lines = debugLines(events).join("\n");
    assert.match(lines, /kept for 25 s, until \d{4}-\d\d-\d\dT/);
    assert.match(lines, /ssh -J ci-host\.example -p \d+ root@127\.0\.0\.1/);
    assert.match(lines, /host key SHA256:/);
    const [kept] = fleet.orchestrator.debug.list();
    assert.equal(kept?.jobId, first.jobId);
    assert.equal((await leftovers(fleet.runRoot)).dirs.length, 1, "the VM still runs");
    const target = { host: "127.0.0.1", port: kept.port, username: kept.username, hostKey: kept.hostKey };

    const session = await connectSsh(
      { ...target, privateKey: operator.privateKey },
      { signal: AbortSignal.timeout(20_000) },
    );
    const out: string[] = [];
    await session.exec("echo inside-$((6*7))", { onStdout: (l) => out.push(l) });
    session.close();
    assert.deepEqual(out, ["inside-42"]);
    await assert.rejects(
      connectSsh({ ...target, privateKey: stranger.privateKey }, { signal: AbortSignal.timeout(20_000) }),
      "a key that is not configured is refused",
    );

    const second = await fleet.runToEnd(failingJob(fleet, OPTED_IN, true));
    assert.match(debugLines(second).join("\n"), new RegExp(`not kept: job ${first.jobId} of ${OPTED_IN} already has`));
    assert.equal(fleet.orchestrator.debug.list().length, 1);

    const untilExpiry = kept.expiresAt.getTime() - Date.now();
    await sleep(Math.max(0, untilExpiry) + 3_000);
    assert.deepEqual(fleet.orchestrator.debug.list(), []);
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] }, "the kept VM is gone at expiry");
  });

  test("ciadm debug end destroys a kept VM at once", async () => {
    const job = failingJob(fleet, OPTED_IN, true);
    await fleet.runToEnd(job);
    assert.equal(fleet.orchestrator.debug.list()[0]?.jobId, job.jobId);
    const ended = await runCiadm(
      ["debug", "end", job.jobId, "--amqp", AMQP_URL, "--namespace", fleet.namespace],
      projectRoot,
    );
    assert.equal(ended.code, 0, ended.stderr);
    // Destroying takes a moment (QMP quit, process exit, files removed): poll for at most 10 s.
    for (let i = 0; i < 100 && (await leftovers(fleet.runRoot)).dirs.length > 0; i++) await sleep(100);
    assert.deepEqual(fleet.orchestrator.debug.list(), []);
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] });
  });
});
