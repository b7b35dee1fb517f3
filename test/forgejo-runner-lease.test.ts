import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Result } from "@solstice/forgejo-runner";
import { FleetKeyring, generateFleetKey, parseFleetKeys } from "@solstice/protocol";
import { pino } from "pino";
import { type FakeForgejo, type FakeTask, startFakeForgejo } from "./fakes/forgejo/fake-forgejo.ts";
import { leftovers } from "./support/fleet.ts";
import { type RunningRunner, startRegisteredRunner } from "./support/forgejo-daemon.ts";
import { type HostProcess, type ProcessFleet, startProcessFleet } from "./support/process-fleet.ts";

// The runner owns its jobs (the lease rule): an orchestrator killed mid-job (kill -9, its QEMU
// dies with it) sends no more events; after the lease time the runner cancels that attempt,
// says so in the forge's log, and publishes the job again as the next attempt, which another
// orchestrator runs. Past the attempt limit the task fails with the reason. One VM at a time.

const LEASE_MS = 6_000;
const TICKS = 12;
const WORKFLOW = `name: ci
jobs:
  ticks:
    name: ticks
    runs-on: solstice-tiny
    steps:
      - name: tick
        run: for i in $(seq 1 ${TICKS}); do echo tick-$i; sleep 0.5; done
`;

describe("the runner's lease on its jobs", { timeout: 600_000 }, () => {
  let forge: FakeForgejo;
  let fleet: ProcessFleet;
  let runner: RunningRunner | undefined;
  /** The host that ran the first case's retry; the second case starts on it. */
  let hostB: HostProcess | undefined;
  const fleetKeys = generateFleetKey("leasetest");
  const keyring = new FleetKeyring(parseFleetKeys(fleetKeys));
  const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });
  const startHost = (id: string) =>
    fleet.startHost(id, "tiny=1", { SOLSTICE_LEASE_MS: String(LEASE_MS), SOLSTICE_FLEET_KEYS: fleetKeys });
  const contents = (task: FakeTask) => task.log.map((l) => l.content);
  /** Kills a host once it runs the task's step, and waits until its QEMU is gone too. */
  const killMidStep = async (task: FakeTask, host: HostProcess, attempt: number) => {
    await forge.waitFor(
      () => {
        const accepted = contents(task).findIndex((l) => l.includes(`attempt ${attempt} accepted by ${host.id}`));
        return accepted >= 0 && contents(task).slice(accepted).includes("tick-2");
      },
      180_000,
      `attempt ${attempt} ticking on ${host.id}`,
    );
    host.child.kill("SIGKILL");
    await host.exited;
    for (let i = 0; i < 40 && (await leftovers(host.runRoot)).qemu.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.deepEqual((await leftovers(host.runRoot)).qemu, [], `${host.id}'s QEMU died with it`);
  };

  before(async () => {
    forge = await startFakeForgejo();
    fleet = await startProcessFleet();
    runner = await startRegisteredRunner({
      forge,
      name: "lease",
      bus: fleet.bus,
      namespace: fleet.namespace,
      keyring,
      log,
      config: {
        fetchIntervalMs: 200,
        reportIntervalMs: 300,
        leaseMs: LEASE_MS,
        maxAttempts: 2,
      },
    });
  });
  after(async () => {
    await runner?.stop(5000);
    await fleet?.close();
    await forge?.close();
  });

  test("a host killed mid-job: the attempt is cancelled after the lease, retried on another host, and the task succeeds", async () => {
    const hostA = await startHost("lease-a");
    const jobId = forge.queueJob({ workflow: WORKFLOW });
    await forge.waitFor(() => forge.taskOfJob(jobId) !== undefined, 30_000, "the task taken");
    const task = forge.taskOfJob(jobId) as FakeTask;
    await killMidStep(task, hostA, 1);
    const killedAt = Date.now();
    await forge.waitFor(
      () => contents(task).some((l) => /attempt 1 sent no event for 6 s.*retrying as attempt 2/.test(l)),
      LEASE_MS + 10_000,
      "the lost attempt said in the forge's log",
    );
    assert.ok(Date.now() - killedAt >= LEASE_MS - 1500, "not before the lease ran out");
    hostB = await startHost("lease-b");
    await forge.waitFor(() => task.result !== Result.UNSPECIFIED, 240_000, "the task's result");
    await forge.waitFor(() => task.logArchived, 30_000, "the final log");

    const lines = contents(task);
    assert.equal(task.result, Result.SUCCESS, lines.join("\n"));
    assert.ok(lines.some((l) => l.includes("attempt 2 accepted by lease-b")));
    const step = task.steps[0];
    assert.ok(step);
    assert.deepEqual(
      lines.slice(Number(step.logIndex), Number(step.logIndex + step.logLength)),
      Array.from({ length: TICKS }, (_, i) => `tick-${i + 1}`),
      "the step's range is attempt 2's output, whole and once",
    );
    assert.equal(step.result, Result.SUCCESS);
    const lostAt = lines.findIndex((l) => l.includes("retrying as attempt 2"));
    assert.ok(lines.slice(0, lostAt).includes("tick-2"), "attempt 1's rows stay before the retry notice");
    assert.ok(lostAt < Number(step.logIndex), "…and outside the step's range");
  });

  test("past the attempt limit the task fails with the reason in the forge's log", async () => {
    const jobId = forge.queueJob({ workflow: WORKFLOW });
    await forge.waitFor(() => forge.taskOfJob(jobId) !== undefined, 30_000, "the task taken");
    const task = forge.taskOfJob(jobId) as FakeTask;
    assert.ok(hostB, "host B from the previous case serves");
    await killMidStep(task, hostB, 1);
    await forge.waitFor(
      () => contents(task).some((l) => l.includes("retrying as attempt 2")),
      LEASE_MS + 10_000,
      "attempt 2 published",
    );
    const hostC = await startHost("lease-c");
    await killMidStep(task, hostC, 2);
    await forge.waitFor(() => task.result !== Result.UNSPECIFIED, LEASE_MS + 30_000, "the task's result");
    const lines = contents(task);
    assert.equal(task.result, Result.FAILURE);
    assert.ok(
      lines.some((l) => /attempt 2 sent no event for 6 s.*no attempts left \(2 allowed\)/.test(l)),
      lines.join("\n"),
    );
    assert.ok(task.steps.every((s) => s.result !== Result.SUCCESS));
  });
});
