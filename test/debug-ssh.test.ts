import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DEBUG_SSH_FLAG } from "@solstice/orchestrator";
import type { JobEvent } from "@solstice/protocol";
import { connectSsh, generateJobKeys } from "@solstice/ssh";
import { projectRoot, runCiadm } from "./support/ciadm.ts";
import { AMQP_URL, DATABASE_URL, leftovers, startTestFleet, type TestFleet, tinyJob } from "./support/fleet.ts";

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
  /** The person who triggered the job, with the key their forge lists for them. */
  const alice = generateJobKeys().client;
  const debugList = async (...extra: string[]) => {
    const listed = await runCiadm(
      [
        "debug",
        "list",
        "--database-url",
        DATABASE_URL,
        "--schema",
        fleet.namespace.replace("test-", "test_"),
        ...extra,
      ],
      projectRoot,
    );
    assert.equal(listed.code, 0, listed.stderr);
    return listed.stdout;
  };
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

  test("an opted-in failed job is kept: only the forge user's and the configured keys get in, one VM per repository, listed, gone at expiry", async () => {
    const first = failingJob(fleet, OPTED_IN, true);
    first.debugAccess = {
      $typeName: "solstice.v1.DebugAccess",
      user: "alice",
      publicKeys: [alice.publicKey, "ssh-ed25519 not-a-key", `command="sh" ${stranger.publicKey}`],
    };
    const events = await fleet.runToEnd(first);
    const lines = debugLines(events).join("\n");
    assert.match(lines, /kept for 25 s, until \d{4}-\d\d-\d\dT/);
    assert.match(lines, /ssh -J ci-host\.example -p \d+ root@127\.0\.0\.1/);
    assert.match(lines, /host key SHA256:/);
    assert.match(lines, /connect with alice's key from the forge or one of the host's 1 debug key:/);
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
    const asAlice = await connectSsh(
      { ...target, privateKey: alice.privateKey },
      { signal: AbortSignal.timeout(20_000) },
    );
    asAlice.close();
    await assert.rejects(
      connectSsh({ ...target, privateKey: stranger.privateKey }, { signal: AbortSignal.timeout(20_000) }),
      "a key that is not configured is refused",
    );

    const second = await fleet.runToEnd(failingJob(fleet, OPTED_IN, true));
    assert.match(debugLines(second).join("\n"), new RegExp(`not kept: job ${first.jobId} of ${OPTED_IN} already has`));
    assert.equal(fleet.orchestrator.debug.list().length, 1);

    // `ciadm debug list` reads what the orchestrator recorded: one VM, who may connect, how, until when.
    const [listed, ...more] = JSON.parse(await debugList("--json")) as {
      jobId: string;
      repository: string;
      host: string;
      connect: { command: string; port: number; hostKeyFingerprint: string };
      allowed: { who: string; fingerprint: string }[];
      expiresAt: string;
      secondsLeft: number;
    }[];
    assert.deepEqual(more, []);
    assert.equal(listed?.jobId, first.jobId);
    assert.equal(listed.repository, OPTED_IN);
    assert.match(listed.host, /^host-/);
    assert.equal(listed.connect.command, `ssh -J ci-host.example -p ${kept.port} root@127.0.0.1`);
    assert.equal(listed.connect.hostKeyFingerprint, kept.hostKeyFingerprint);
    assert.deepEqual(
      listed.allowed.map((a) => a.who),
      ["alice (forge)", "operator"],
      "the malformed and option-carrying forge keys are left out",
    );
    assert.equal(listed.expiresAt, kept.expiresAt.toISOString());
    assert.ok(listed.secondsLeft > 0 && listed.secondsLeft <= TTL_MS / 1000);
    const table = await debugList();
    assert.match(table, /WHO MAY CONNECT/);
    assert.match(
      table,
      new RegExp(`${first.jobId} +${OPTED_IN} +tiny +host-\\S+ +alice \\(forge\\) ×1, operator ×1 +ssh -J`),
    );

    const untilExpiry = kept.expiresAt.getTime() - Date.now();
    await sleep(Math.max(0, untilExpiry) + 3_000);
    assert.deepEqual(fleet.orchestrator.debug.list(), []);
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] }, "the kept VM is gone at expiry");
    assert.deepEqual(JSON.parse(await debugList("--json")), [], "and no longer listed");
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
    assert.deepEqual(JSON.parse(await debugList("--json")), [], "an ended debug VM is no longer listed");
  });
});
