import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Result } from "@solstice/forgejo-runner";
import { FleetKeyring, generateFleetKey, parseFleetKeys } from "@solstice/protocol";
import { pino } from "pino";
import { type FakeForgejo, startFakeForgejo } from "./fakes/forgejo/fake-forgejo.ts";
import { startTestFleet, type TestFleet } from "./support/fleet.ts";
import { type RunningRunner, startRegisteredRunner } from "./support/forgejo-daemon.ts";

// A runner of capacity 2 holds two tasks of the forge at once and asks for no third until one of
// them ends. Asserted on the order of the calls the fake forge received, not on timing. The fleet
// behind it has one tiny VM slot, so the second job waits on the bus while its task is held.

const job = (name: string, run: string) => `name: ci
jobs:
  ${name}:
    name: ${name}
    runs-on: solstice-tiny
    steps:
      - run: ${run}
`;

let forge: FakeForgejo;
let fleet: TestFleet;
let runner: RunningRunner | undefined;
const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("capacitytest")));

before(async () => {
  forge = await startFakeForgejo();
  fleet = await startTestFleet("tiny=1", { keyring });
  runner = await startRegisteredRunner({
    forge,
    name: "capacity",
    bus: fleet.bus,
    namespace: fleet.namespace,
    keyring,
    log,
    config: {
      capacity: 2,
      fetchIntervalMs: 200,
      reportIntervalMs: 300,
    },
  });
});
after(async () => {
  await runner?.stop(5000);
  await fleet?.close();
  await forge?.close();
});

test("with capacity 2, two tasks run at once and a third is fetched only once one of them ended", {
  timeout: 420_000,
}, async () => {
  const jobs = [
    forge.queueJob({ workflow: job("first", "echo first; sleep 3") }),
    forge.queueJob({ workflow: job("second", "echo second") }),
    forge.queueJob({ workflow: job("third", "echo third") }),
  ];
  await forge.waitFor(
    () => jobs.every((j) => forge.taskOfJob(j)?.result === Result.SUCCESS),
    360_000,
    "all three tasks succeeded",
  );
  const [first, second, third] = jobs.map((j) => forge.taskOfJob(j));
  assert.ok(first && second && third);
  assert.ok(first.finishedAtCall !== undefined && second.finishedAtCall !== undefined);

  // Two at once: the second task was taken while the first was still running.
  assert.ok(first.assignedAtCall < second.assignedAtCall);
  assert.ok(second.assignedAtCall < first.finishedAtCall, "the second task was taken before the first ended");

  // The third waited: no FetchTask at all while both slots were held, and its assignment came after an end.
  const slotFreed = Math.min(first.finishedAtCall, second.finishedAtCall);
  assert.ok(third.assignedAtCall > slotFreed, "the third task was taken only after a slot was free");
  const whileFull = forge.calls.slice(second.assignedAtCall + 1, slotFreed);
  assert.deepEqual(
    whileFull.filter((c) => c.procedure.endsWith("/FetchTask")),
    [],
    "no FetchTask while both slots were held",
  );
  assert.ok(
    whileFull.filter((c) => c.procedure.endsWith("/UpdateTask")).length >= 5,
    "the runner was reporting both tasks meanwhile, so it was alive and full, not idle",
  );
  assert.equal(runner?.daemon.active, 0);
});
