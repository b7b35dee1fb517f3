import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type JobEvent, type JobRequest, Outcome } from "@solstice/protocol";
import amqp from "amqplib";
import { followCiadm, runCiadm } from "./support/ciadm.ts";
import { AMQP_URL, leftovers, tinyJob } from "./support/fleet.ts";
import {
  type HostProcess,
  hostIntervals,
  maxOverlap,
  type ProcessFleet,
  startProcessFleet,
} from "./support/process-fleet.ts";

// Two orchestrator processes on one broker and database. At most two tiny guests run at once:
// each host serves `tiny=1`. `nobody` and `bonly` are labels no image exists for: their jobs are
// routed and accepted like any other, then fail at once resolving the image, which is all a
// routing test needs without booting more VMs.
const A = "host-a";
const B = "host-b";

const acceptedBy = (events: JobEvent[]) => {
  const accepted = events.find((e) => e.body.case === "accepted");
  return accepted?.body.case === "accepted" ? accepted.body.value.host : undefined;
};
const resultOf = (events: JobEvent[]) => {
  const last = events.find((e) => e.body.case === "jobFinished");
  return last?.body.case === "jobFinished" ? last.body.value : undefined;
};

describe("a fleet of two orchestrator processes (TCG, tiny guests)", { timeout: 600_000 }, () => {
  let fleet: ProcessFleet;
  let hostA: HostProcess;
  let hostB: HostProcess;
  const ciadm = (...args: string[]) => runCiadm(args, process.cwd(), fleet.ciadmEnv);
  const publishAll = async (jobs: JobRequest[]) => {
    for (const job of jobs) await fleet.bus.publishJob(job);
  };
  const finishAll = (jobs: JobRequest[], timeoutMs = 240_000) =>
    Promise.all(jobs.map((j) => fleet.waitFor(j.jobId, timeoutMs)));

  before(async () => {
    fleet = await startProcessFleet();
    [hostA, hostB] = await Promise.all([
      fleet.startHost(A, "tiny=1,nobody=1"),
      fleet.startHost(B, "tiny=1,nobody=1,bonly=1", { SOLSTICE_MAX_VMS: "1" }),
    ]);
  });
  after(async () => {
    await fleet?.close();
  });

  test("ciadm hosts shows both hosts online with their labels and capacity", async () => {
    const run = await ciadm("hosts", "--json");
    assert.equal(run.code, 0, run.stderr);
    const hosts = JSON.parse(run.stdout) as {
      id: string;
      status: string;
      labels: Record<string, number>;
      maxVms: number;
    }[];
    assert.deepEqual(
      hosts.map((h) => [h.id, h.status, h.labels, h.maxVms]),
      [
        [A, "online", { tiny: 1, nobody: 1 }, 2],
        [B, "online", { tiny: 1, nobody: 1, bonly: 1 }, 1],
      ],
    );
    const table = await ciadm("hosts");
    assert.match(table.stdout, /^HOST\s+STATUS\s+LABELS/m);
    assert.match(table.stdout, new RegExp(`^${B}\\s+online\\s+bonly=1,nobody=1,tiny=1\\s+1\\s`, "m"));
  });

  test("jobs for a label go only to the host that serves it", async () => {
    const jobs = [1, 2, 3].map(() => tinyJob(fleet.owner, [{ name: "never", run: "true" }], { runsOn: "bonly" }));
    await publishAll(jobs);
    const all = await finishAll(jobs, 60_000);
    assert.deepEqual(
      all.map((events) => acceptedBy(events)),
      [B, B, B],
    );
    const labels = JSON.parse((await ciadm("labels", "--json")).stdout) as { label: string; hosts: string[] }[];
    assert.deepEqual(labels.find((l) => l.label === "bonly")?.hosts, [B]);
    assert.deepEqual(labels.find((l) => l.label === "tiny")?.hosts, [A, B]);
  });

  test("a burst never exceeds a host's per-label or total capacity, and waiting jobs show as queued", async () => {
    const tiny = [1, 2, 3, 4].map((i) => tinyJob(fleet.owner, [{ name: "work", run: `echo burst-${i}; sleep 2` }]));
    const nobody = [1, 2].map(() => tinyJob(fleet.owner, [{ name: "never", run: "true" }], { runsOn: "nobody" }));
    await publishAll([...tiny, ...nobody]);
    const labels = JSON.parse((await ciadm("labels", "--json")).stdout) as {
      label: string;
      capacity: number;
      queued: number | null;
    }[];
    const tinyLabel = labels.find((l) => l.label === "tiny");
    assert.equal(tinyLabel?.capacity, 2);
    assert.ok((tinyLabel?.queued ?? 0) >= 1, `4 tiny jobs on 2 slots leave some queued: ${JSON.stringify(tinyLabel)}`);

    const all = await finishAll([...tiny, ...nobody]);
    for (const events of all.slice(0, 4)) assert.equal(resultOf(events)?.result, Outcome.SUCCESS);
    const tinyByHost = hostIntervals(fleet, tiny);
    assert.ok(
      (tinyByHost.get(A)?.length ?? 0) >= 1 && (tinyByHost.get(B)?.length ?? 0) >= 1,
      "both hosts took tiny jobs",
    );
    assert.equal(maxOverlap(tinyByHost.get(A) ?? []), 1, "host A runs one tiny job at a time (tiny=1)");
    assert.equal(maxOverlap(tinyByHost.get(B) ?? []), 1, "host B runs one tiny job at a time (tiny=1)");
    const everythingOnB = hostIntervals(fleet, [...tiny, ...nobody]).get(B) ?? [];
    assert.equal(maxOverlap(everythingOnB), 1, "host B never runs two jobs of any labels at once (SOLSTICE_MAX_VMS=1)");
  });

  test("drain lets a running job finish and takes no new ones; undrain resumes", async () => {
    assert.equal((await ciadm("drain", A)).code, 0);
    await hostA.waitForLog((l) => l.msg === "draining: taking no new jobs");
    const first = tinyJob(fleet.owner, [{ name: "slow", run: "sleep 4; echo still-here" }]);
    await fleet.bus.publishJob(first);
    await fleet.waitFor(first.jobId, 120_000, (e) => e.body.case === "stepStarted");
    assert.equal(acceptedBy(fleet.eventsOf(first.jobId)), B, "a drained host A took nothing");

    const drainB = await ciadm("drain", B);
    assert.match(drainB.stdout, /host host-b is draining/);
    await hostB.waitForLog((l) => l.msg === "draining: taking no new jobs");
    const second = tinyJob(fleet.owner, [{ name: "later", run: "echo later" }]);
    await fleet.bus.publishJob(second);
    const firstEvents = await fleet.waitFor(first.jobId, 120_000);
    assert.equal(resultOf(firstEvents)?.result, Outcome.SUCCESS, "the running job finished on the draining host");
    const hosts = JSON.parse((await ciadm("hosts", "--json")).stdout) as { id: string; status: string }[];
    assert.deepEqual(
      hosts.map((h) => h.status),
      ["draining", "draining"],
    );
    assert.equal(fleet.eventsOf(second.jobId).length, 0, "no host takes a job while both are draining");
    assert.equal((await fleet.bus.queueDepths(["tiny"])).get("tiny"), 1);

    assert.equal((await ciadm("undrain", A)).code, 0);
    const secondEvents = await fleet.waitFor(second.jobId, 120_000);
    assert.equal(acceptedBy(secondEvents), A);
    assert.equal((await ciadm("undrain", B)).code, 0);
    await hostB.waitForLog((l) => l.msg === "taking jobs again");
  });

  test("ciadm logs --follow shows a running job's output live, and ciadm cancel stops the job within seconds, its VM gone", async () => {
    const job = tinyJob(fleet.owner, [
      { name: "forever", run: "for i in $(seq 1 300); do echo tick-$i; sleep 1; done" },
    ]);
    await fleet.bus.publishJob(job);
    await fleet.waitFor(job.jobId, 120_000, (e) => e.body.case === "stepStarted");
    const follower = followCiadm(["logs", job.jobId, "--follow"], fleet.ciadmEnv);
    await follower.stderrMatches(/following job/);
    const ticks = () => fleet.eventsOf(job.jobId).filter((e) => e.body.case === "log").length;
    const seen = ticks();
    await fleet.waitFor(job.jobId, 30_000, () => ticks() >= seen + 2);

    const started = Date.now();
    const run = await ciadm("cancel", job.jobId);
    const elapsed = Date.now() - started;
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /: cancelled/);
    assert.ok(elapsed < 20_000, `cancel took ${elapsed} ms (a ciadm start included)`);
    const result = resultOf(await fleet.waitFor(job.jobId, 30_000));
    assert.equal(result?.result, Outcome.CANCELLED);
    assert.equal((await fleet.store.getJob(job.jobId))?.state, "cancelled");
    const host = acceptedBy(fleet.eventsOf(job.jobId)) === A ? hostA : hostB;
    assert.deepEqual((await leftovers(host.runRoot)).qemu, [], "no QEMU left for the cancelled job");

    const followed = await follower.done;
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(followed.stdout, /│ tick-\d+/, "live lines reach the follower");
    assert.match(followed.stdout, /job test: cancelled/);
  });

  test("ciadm jobs lists newest first with filters, and job show gives steps, host and attempt", async () => {
    const onB = JSON.parse((await ciadm("jobs", "--json", "--host", B)).stdout) as {
      id: string;
      host: string;
      createdAt: string;
    }[];
    assert.ok(onB.length >= 4);
    assert.ok(onB.every((j) => j.host === B));
    const times = onB.map((j) => Date.parse(j.createdAt));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
      "newest first",
    );
    const cancelled = JSON.parse((await ciadm("jobs", "--json", "--state", "cancelled")).stdout) as { id: string }[];
    assert.equal(cancelled.length, 1);
    const show = await ciadm("job", "show", cancelled[0]?.id ?? "");
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^state:\s+cancelled/m);
    assert.match(show.stdout, /^attempt:\s+1$/m);
    assert.match(show.stdout, /^1\s+forever\s+cancelled/m);
    const missing = await ciadm("job", "show", "not-a-uuid");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /hint: job ids are uuids/);
  });

  test("ciadm enqueue runs a manual job attached with live output, and --detach returns at once with an ownerless job", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "solstice-enqueue-"));
    try {
      const workflow = path.join(dir, "manual.yml");
      await writeFile(
        workflow,
        [
          "on: workflow_dispatch",
          "jobs:",
          "  hi:",
          "    runs-on: tiny",
          "    steps:",
          "      - run: echo manual-hello",
          "  elsewhere:",
          "    runs-on: bonly",
          "    steps:",
          "      - run: echo never",
          "",
        ].join("\n"),
      );
      const attached = await runCiadm(["enqueue", workflow, "--job", "hi"], dir, fleet.ciadmEnv);
      assert.equal(attached.code, 0, attached.stderr);
      assert.match(attached.stdout, /│ manual-hello/);
      assert.match(attached.stdout, /✔/);

      const detached = await runCiadm(["enqueue", workflow, "--job", "elsewhere", "--detach"], dir, fleet.ciadmEnv);
      assert.equal(detached.code, 0, detached.stderr);
      const jobId = /^([0-9a-f-]{36})\s/m.exec(detached.stdout)?.[1] ?? "";
      assert.ok(jobId, detached.stdout);
      const deadline = Date.now() + 60_000;
      let row = await fleet.store.getJob(jobId);
      while (row?.state !== "failed" && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        row = await fleet.store.getJob(jobId);
      }
      assert.equal(row?.owner, "detached");
      assert.equal(row?.hostId, B, "a detached job is routed like any other");
      assert.equal(row?.state, "failed", "its outcome is in PostgreSQL");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("SIGTERM drains a host: its running job finishes, then the process exits 0", async () => {
    const job = tinyJob(fleet.owner, [{ name: "short", run: "sleep 3; echo done-before-exit" }]);
    await fleet.bus.publishJob(job);
    await fleet.waitFor(job.jobId, 120_000, (e) => e.body.case === "stepStarted");
    const host = acceptedBy(fleet.eventsOf(job.jobId)) === A ? hostA : hostB;
    host.child.kill("SIGTERM");
    const events = await fleet.waitFor(job.jobId, 60_000);
    assert.equal(resultOf(events)?.result, Outcome.SUCCESS, "the running job was not cut short");
    assert.equal(await host.exited, 0);
    assert.ok(host.logs.some((l) => l.msg === "draining before exit"));
  });

  test("dead letters are listed with their reason, replayed by id and purged with --yes", async () => {
    const connection = await amqp.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    for (const id of ["bad-1", "bad-2"]) {
      channel.publish(`${fleet.namespace}.jobs`, "tiny", Buffer.from("not protobuf"), {
        persistent: true,
        messageId: id,
        type: "solstice.v1.JobRequest",
      });
    }
    await channel.waitForConfirms();
    await connection.close();
    const listed = async () => {
      for (let i = 0; i < 80; i++) {
        const letters = await fleet.bus.listDeadLetters(10);
        if (letters.length >= 2) return letters;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error("the malformed jobs never reached the dead-letter queue");
    };
    await listed();
    const letters = JSON.parse((await ciadm("dlq", "list", "--json")).stdout) as {
      id: string;
      reason: string;
      type: string;
      queue: string;
    }[];
    assert.deepEqual(letters.map((l) => l.id).sort(), ["bad-1", "bad-2"]);
    assert.ok(
      letters.every((l) => l.reason.length > 0 && l.reason !== "unknown"),
      JSON.stringify(letters),
    );
    assert.ok(letters.every((l) => l.type === "solstice.v1.JobRequest" && l.queue.endsWith(".jobs.v1.tiny")));

    const refused = await ciadm("dlq", "purge");
    assert.notEqual(refused.code, 0, "no terminal and no --yes: nothing is purged");
    assert.match(refused.stderr, /pass --yes/);

    const replay = await ciadm("dlq", "replay", "bad-1", "--yes");
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, /replayed 1 dead letter/);
    // Replayed to its label queue, an orchestrator refuses it again, with its reason.
    assert.deepEqual((await listed()).map((l) => l.messageId).sort(), ["bad-1", "bad-2"]);

    const purge = await ciadm("dlq", "purge", "--yes");
    assert.match(purge.stdout, /purged 2 dead letter/);
    assert.deepEqual(await fleet.bus.listDeadLetters(10), []);
  });
});
