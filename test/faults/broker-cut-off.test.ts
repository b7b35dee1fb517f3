import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { type Bus, connectBus } from "@solstice/bus";
import { loadConfig, orchestratorConfigSchema } from "@solstice/config";
import { createPgJobStore, type JobStore, migrate } from "@solstice/db";
import { type Orchestrator, startOrchestrator } from "@solstice/orchestrator";
import { ControlSchema, create, JobRequestSchema, SCHEMA_VERSION } from "@solstice/protocol";
import { createQemuBackend } from "@solstice/vm";
import { pino } from "pino";
import { AMQP_URL, DATABASE_URL, dropSchema, leftovers, tinyJob, waitForFirstStepRunning } from "../support/fleet.ts";
import { type Relay, startRelay } from "../support/tcp-relay.ts";

// The orchestrator reaches RabbitMQ through a TCP relay this test can cut, so the broker itself
// (shared with tests running in parallel) is never restarted.
const LEASE_MS = 8_000;
const HEARTBEAT_MS = 1_000;
const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });

const id = randomUUID().slice(0, 8);
const namespace = `test-${id}`;
const schema = `test_${id}`;
let relay: Relay;
let hostBus: Bus;
let ownerBus: Bus;
let store: JobStore;
let closeStore: () => Promise<void>;
let orchestrator: Orchestrator;
let runRoot: string;

before(async () => {
  const target = new URL(AMQP_URL);
  relay = await startRelay(target);
  const relayed = new URL(AMQP_URL);
  relayed.hostname = "127.0.0.1";
  relayed.port = String(relay.port);
  runRoot = await mkdtemp(path.join(tmpdir(), "solstice-vms-"));
  await migrate({ databaseUrl: DATABASE_URL, schema, log });
  ({ store, close: closeStore } = createPgJobStore({ databaseUrl: DATABASE_URL, schema, log }));
  ownerBus = await connectBus({ url: AMQP_URL, namespace, log });
  hostBus = await connectBus({ url: relayed.toString(), namespace, log, publishTimeoutMs: 3_000 });
  const config = loadConfig("orchestrator", orchestratorConfigSchema, {
    SOLSTICE_AMQP_URL: relayed.toString(),
    SOLSTICE_DATABASE_URL: DATABASE_URL,
    SOLSTICE_DATABASE_SCHEMA: schema,
    SOLSTICE_NAMESPACE: namespace,
    SOLSTICE_HOST_ID: `cut-${id}`,
    SOLSTICE_CAPACITY: "tiny=1",
    SOLSTICE_RUN_DIR: runRoot,
    SOLSTICE_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS),
    SOLSTICE_LEASE_MS: String(LEASE_MS),
  });
  const backend = createQemuBackend({ log, accelerator: "tcg", runRoot });
  orchestrator = await startOrchestrator({ config, bus: hostBus, store, backend, accelerator: "tcg", log });
});

after(async () => {
  relay?.restore();
  await orchestrator?.stop(0);
  await hostBus?.close();
  await ownerBus?.ensureLabelQueue("tiny");
  await ownerBus?.deleteNamespace();
  await ownerBus?.close();
  await relay?.close();
  await closeStore?.();
  await dropSchema(schema);
  await rm(runRoot, { recursive: true, force: true });
});

test("a host cut off from the broker cancels its own job and destroys its VM before the owner's lease runs out; the retry runs the job again", {
  timeout: 180_000,
}, async (t) => {
  const job = tinyJob("nobody-follows", [{ name: "long", run: "echo started; sleep 300" }]);
  await ownerBus.publishJob(job);
  await waitForFirstStepRunning(store, job.jobId, 120_000);
  assert.equal((await leftovers(runRoot)).qemu.length, 1, "the job's VM runs");

  const cutAt = Date.now();
  relay.cut();
  while (orchestrator.running.size > 0) {
    assert.ok(Date.now() - cutAt < 60_000, "the host still runs the job a minute after losing the broker");
    await new Promise((r) => setTimeout(r, 100));
  }
  const stoppedAfterMs = Date.now() - cutAt;
  t.diagnostic(`job stopped ${stoppedAfterMs} ms after the cut (lease ${LEASE_MS} ms, heartbeat ${HEARTBEAT_MS} ms)`);
  assert.ok(stoppedAfterMs >= LEASE_MS - 2 * HEARTBEAT_MS, `not before lease − 2 × heartbeat (${stoppedAfterMs} ms)`);
  assert.ok(stoppedAfterMs < LEASE_MS, `VM gone before the owner would retry (${stoppedAfterMs} ms)`);
  assert.deepEqual((await leftovers(runRoot)).qemu, [], "its VM is gone");
  const row = await store.getJob(job.jobId);
  assert.equal(row?.state, "cancelled");
  assert.match(row?.reason ?? "", /lost the broker/);
  assert.equal(row?.givenBack, true, "the attempt is given back for its owner to retry");

  // The owner retries the silent attempt once its lease runs out: the retry runs the job again
  // rather than being answered with the given-back end.
  relay.restore();
  await ownerBus.publishJob(create(JobRequestSchema, { ...job, attempt: 2 }));
  await waitForFirstStepRunning(store, job.jobId, 120_000);
  const retried = await store.getJob(job.jobId);
  assert.equal(retried?.attempt, 2);
  assert.equal(retried?.state, "running");
  assert.equal(retried?.reason, null);
  t.diagnostic(`attempt 2 runs on ${retried?.hostId} ${Date.now() - cutAt} ms after the cut`);
  await ownerBus.publishControl(
    create(ControlSchema, {
      schemaVersion: SCHEMA_VERSION,
      command: { case: "cancel", value: { jobId: job.jobId, attempt: 2, reason: "the test is done" } },
    }),
  );
  while (orchestrator.running.size > 0) await new Promise((r) => setTimeout(r, 100));
  const ended = await store.getJob(job.jobId);
  assert.equal(ended?.state, "cancelled");
  assert.equal(ended?.givenBack, false, "a cancel by the owner is the job's end");
});
