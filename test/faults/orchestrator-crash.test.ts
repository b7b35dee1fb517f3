import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { LeaseWatch } from "@solstice/executor";
import { ControlSchema, create, type JobEvent, Outcome, SCHEMA_VERSION } from "@solstice/protocol";
import { pino } from "pino";
import { runCiadm } from "../support/ciadm.ts";
import { leftovers, tinyJob } from "../support/fleet.ts";
import { type HostProcess, type ProcessFleet, startProcessFleet } from "../support/process-fleet.ts";

// The owner's lease (8 s) is short so the case stays short; the hosts heartbeat every second.
const LEASE_MS = 8_000;

let fleet: ProcessFleet;
let hosts: HostProcess[];
before(async () => {
  fleet = await startProcessFleet();
  hosts = await Promise.all([
    fleet.startHost("crash-a", "tiny=1", { SOLSTICE_LEASE_MS: String(LEASE_MS) }),
    fleet.startHost("crash-b", "tiny=1", { SOLSTICE_LEASE_MS: String(LEASE_MS) }),
  ]);
});
after(async () => {
  await fleet?.close();
});

test("kill -9 of an orchestrator mid-job: its QEMU dies with it, the owner's lease retries the job on the other host, and it finishes", {
  timeout: 300_000,
}, async (t) => {
  const job = tinyJob(fleet.owner, [{ name: "count", run: "for i in $(seq 1 16); do echo n-$i; sleep 0.5; done" }]);
  const seen: JobEvent[] = [];
  const lost: string[] = [];
  let settle: (() => void) | undefined;
  const finished = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const lease = new LeaseWatch({
    request: job,
    leaseMs: LEASE_MS,
    maxAttempts: 3,
    log: pino({ level: "silent" }),
    publish: (request) => fleet.bus.publishJob(request),
    cancel: (jobId, attempt, reason) =>
      fleet.bus.publishControl(
        create(ControlSchema, {
          schemaVersion: SCHEMA_VERSION,
          command: { case: "cancel", value: { jobId, attempt, reason } },
        }),
      ),
    onLost: (attempt, next, reason) => {
      lost.push(`attempt ${attempt} lost (${reason}); next: ${next ?? "none"}`);
      if (next === undefined) settle?.();
    },
  });
  const follower = await fleet.bus.consumeEvents({
    jobId: job.jobId,
    onEvent: async (event) => {
      if (!lease.observe(event)) return;
      seen.push(event);
      if (event.body.case === "jobFinished") settle?.();
    },
  });
  try {
    await lease.start();
    await fleet.waitFor(
      job.jobId,
      120_000,
      (e) => e.attempt === 1 && e.body.case === "log" && e.body.value.lines.some((l) => l.text === "n-2"),
    );
    const accepted = seen.find((e) => e.body.case === "accepted");
    const victim = hosts.find((h) => accepted?.body.case === "accepted" && h.id === accepted.body.value.host);
    assert.ok(victim, "attempt 1 was accepted by one of the hosts");
    const killedAt = Date.now();
    victim.child.kill("SIGKILL");
    await victim.exited;

    // Parent-death signal: the guest goes with its orchestrator, within seconds.
    let qemu = (await leftovers(victim.runRoot)).qemu;
    for (let i = 0; i < 40 && qemu.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 250));
      qemu = (await leftovers(victim.runRoot)).qemu;
    }
    assert.deepEqual(qemu, [], "the killed host's QEMU processes died with it");

    await finished;
    const end = seen.at(-1);
    t.diagnostic(
      `killed ${victim.id} mid-step; ${lost.join("; ")}; retried attempt finished ${Math.round((Date.now() - killedAt) / 1000)} s after the kill`,
    );
    assert.equal(end?.body.case, "jobFinished");
    assert.equal(end?.attempt, 2, "the retry is attempt 2");
    assert.equal(end?.body.case === "jobFinished" ? end.body.value.result : undefined, Outcome.SUCCESS);
    const retriedOn = seen.find((e) => e.attempt === 2 && e.body.case === "accepted");
    assert.notEqual(retriedOn?.body.case === "accepted" ? retriedOn.body.value.host : undefined, victim.id);
    assert.equal(lost.length, 1);
    assert.ok(
      seen.filter((e) => e.attempt === 2).every((e, i, all) => i === 0 || e.seq > (all[i - 1]?.seq ?? 0n)),
      "attempt 2's events are in order",
    );
    const row = await fleet.store.getJob(job.jobId);
    assert.equal(row?.state, "succeeded");
    assert.equal(row?.attempt, 2);
    assert.notEqual(row?.hostId, victim.id);

    // The killed host stopped heartbeating (every second here): operators see it offline, the
    // survivor online. 3 s is three missed heartbeats; the retry above took far longer.
    const listed = await runCiadm(["hosts", "--json", "--offline-after", "3"], process.cwd(), fleet.ciadmEnv);
    assert.equal(listed.code, 0, listed.stderr);
    const status = new Map(
      (JSON.parse(listed.stdout) as { id: string; status: string }[]).map((h) => [h.id, h.status]),
    );
    assert.equal(status.get(victim.id), "offline");
    assert.equal(status.get(hosts.find((h) => h !== victim)?.id ?? ""), "online");
  } finally {
    lease.stop();
    await follower.stop();
  }
});
