import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";
import { createPgJobStore, DbError, type JobStore, MemoryJobStore, migrate, type NewJob } from "@solstice/db";
import { DATABASE_URL, dropSchema, silentLog, uniqueSchema } from "./test-database.ts";

interface Implementation {
  name: string;
  open(): Promise<{ store: JobStore; close(): Promise<void> }>;
}

// One set of behaviours, run against both stores: the embedded local run must act like the fleet.
const implementations: Implementation[] = [
  {
    name: "PgJobStore",
    async open() {
      const schema = uniqueSchema();
      await migrate({ databaseUrl: DATABASE_URL, schema, log: silentLog });
      const { store, close } = createPgJobStore({ databaseUrl: DATABASE_URL, schema, log: silentLog });
      return {
        store,
        async close() {
          await close();
          await dropSchema(schema);
        },
      };
    },
  },
  {
    name: "MemoryJobStore",
    async open() {
      return { store: new MemoryJobStore(), async close() {} };
    },
  },
];

const T0 = new Date("2026-03-01T10:00:00.000Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

function newJob(overrides: Partial<NewJob> = {}): NewJob {
  return {
    jobId: randomUUID(),
    attempt: 1,
    source: "forgejo",
    owner: "runner-a",
    label: "ubuntu-24.04",
    repoUrl: "https://forge.example/acme/widget.git",
    repoFullName: "acme/widget",
    commitSha: "0123456789abcdef0123456789abcdef01234567",
    ref: "refs/heads/main",
    workflowPath: ".forgejo/workflows/ci.yml",
    jobKey: "build",
    jobName: "build",
    steps: [
      { index: 0, name: "checkout" },
      { index: 1, name: "make" },
      { index: 2, name: "make test" },
    ],
    ...overrides,
  };
}

for (const impl of implementations) {
  describe(impl.name, () => {
    const storeTest = (name: string, body: (store: JobStore) => Promise<void>) =>
      test(name, { timeout: 30_000 }, async () => {
        const { store, close } = await impl.open();
        try {
          await body(store);
        } finally {
          await close();
        }
      });

    storeTest("a job goes from queued to running to succeeded with each step's result recorded", async (store) => {
      const job = newJob();
      await store.recordQueued(job, at(0));
      const queued = await store.getJob(job.jobId);
      assert.equal(queued?.state, "queued");
      assert.deepEqual(
        queued?.steps.map((s) => [s.index, s.name, s.state]),
        [
          [0, "checkout", "pending"],
          [1, "make", "pending"],
          [2, "make test", "pending"],
        ],
      );

      assert.equal(await store.markRunning(job.jobId, 1, "host-1", at(1)), true);
      for (const index of [0, 1, 2]) {
        assert.equal(await store.stepStarted(job.jobId, 1, index, at(2 + index)), true);
        const result = { state: "succeeded", conclusion: "succeeded", exitCode: 0 } as const;
        assert.equal(await store.stepFinished(job.jobId, 1, index, result, at(3 + index)), true);
      }
      assert.equal(await store.finishJob(job.jobId, 1, { state: "succeeded" }, at(10)), true);

      const done = await store.getJob(job.jobId);
      assert.equal(done?.state, "succeeded");
      assert.equal(done?.hostId, "host-1");
      assert.equal(done?.reason, null);
      assert.deepEqual(done?.createdAt, at(0));
      assert.deepEqual(done?.startedAt, at(1));
      assert.deepEqual(done?.finishedAt, at(10));
      assert.deepEqual(done?.steps[1], {
        index: 1,
        name: "make",
        state: "succeeded",
        conclusion: "succeeded",
        exitCode: 0,
        startedAt: at(3),
        finishedAt: at(4),
      });
    });

    storeTest("recording the same queued job twice changes nothing", async (store) => {
      const job = newJob();
      await store.recordQueued(job, at(0));
      await store.markRunning(job.jobId, 1, "host-1", at(1));
      await store.recordQueued(job, at(5));
      const record = await store.getJob(job.jobId);
      assert.equal(record?.state, "running");
      assert.deepEqual(record?.queuedAt, at(0));
      assert.equal(record?.steps.length, 3);
    });

    storeTest(
      "a late markRunning or finishJob after the job finished is refused and changes nothing",
      async (store) => {
        const job = newJob();
        await store.recordQueued(job, at(0));
        await store.markRunning(job.jobId, 1, "host-1", at(1));
        assert.equal(
          await store.finishJob(job.jobId, 1, { state: "failed", reason: "step make exited 2" }, at(5)),
          true,
        );

        assert.equal(await store.markRunning(job.jobId, 1, "host-2", at(6)), false);
        assert.equal(await store.finishJob(job.jobId, 1, { state: "succeeded" }, at(7)), false);
        assert.equal(await store.stepStarted(job.jobId, 1, 0, at(8)), false);

        const record = await store.getJob(job.jobId);
        assert.equal(record?.state, "failed");
        assert.equal(record?.reason, "step make exited 2");
        assert.equal(record?.hostId, "host-1");
        assert.deepEqual(record?.finishedAt, at(5));
        assert.equal(record?.steps[0]?.state, "skipped");
      },
    );

    storeTest("a second host cannot claim an attempt that is already running", async (store) => {
      const job = newJob();
      await store.recordQueued(job, at(0));
      const claims = await Promise.all([
        store.markRunning(job.jobId, 1, "host-1", at(1)),
        store.markRunning(job.jobId, 1, "host-2", at(1)),
      ]);
      assert.deepEqual([...claims].sort(), [false, true]);
      const record = await store.getJob(job.jobId);
      assert.equal(record?.hostId, claims[0] ? "host-1" : "host-2");
    });

    storeTest(
      "a newer attempt takes over a running job and the old attempt's late writes are ignored",
      async (store) => {
        const job = newJob();
        await store.recordQueued(job, at(0));
        await store.markRunning(job.jobId, 1, "host-1", at(1));
        await store.stepStarted(job.jobId, 1, 0, at(2));

        await store.recordQueued({ ...job, attempt: 2 }, at(60));
        assert.equal(await store.markRunning(job.jobId, 2, "host-2", at(61)), true);
        assert.equal(await store.markRunning(job.jobId, 1, "host-1", at(62)), false);
        assert.equal(
          await store.stepFinished(job.jobId, 1, 0, { state: "failed", conclusion: "failed", exitCode: 1 }, at(63)),
          false,
        );
        assert.equal(await store.finishJob(job.jobId, 1, { state: "failed", reason: "lost" }, at(64)), false);

        const record = await store.getJob(job.jobId);
        assert.equal(record?.attempt, 2);
        assert.equal(record?.state, "running");
        assert.equal(record?.hostId, "host-2");
        assert.deepEqual(record?.startedAt, at(61));
        assert.deepEqual(
          record?.steps.map((s) => s.state),
          ["pending", "pending", "pending"],
        );

        assert.equal(await store.finishJob(job.jobId, 2, { state: "succeeded" }, at(90)), true);
        assert.equal((await store.getJob(job.jobId))?.state, "succeeded");
      },
    );

    storeTest(
      "an attempt its host gave back (cut off from the broker) is taken over by the retry; any other end is kept",
      async (store) => {
        const givenBack = newJob();
        await store.recordQueued(givenBack, at(0));
        await store.markRunning(givenBack.jobId, 1, "host-1", at(1));
        const reason = "this host lost the broker for over 6 s";
        assert.equal(
          await store.finishJob(givenBack.jobId, 1, { state: "cancelled", reason, givenBack: true }, at(7)),
          true,
        );
        const given = await store.getJob(givenBack.jobId);
        assert.equal(given?.state, "cancelled");
        assert.equal(given?.givenBack, true);
        assert.equal(await store.markRunning(givenBack.jobId, 1, "host-2", at(8)), false, "not by the same attempt");
        assert.equal(await store.markRunning(givenBack.jobId, 2, "host-2", at(9)), true);
        const retried = await store.getJob(givenBack.jobId);
        assert.equal(retried?.state, "running");
        assert.equal(retried?.attempt, 2);
        assert.equal(retried?.hostId, "host-2");
        assert.equal(retried?.reason, null, "the given-back end is cleared");
        assert.equal(retried?.finishedAt, null);
        assert.equal(retried?.givenBack, false);
        assert.equal(await store.finishJob(givenBack.jobId, 2, { state: "succeeded" }, at(20)), true);
        assert.equal((await store.getJob(givenBack.jobId))?.state, "succeeded");

        // A cancel by its owner, or a failure, is the job's end: a retry finds it finished.
        const cancelled = newJob();
        await store.recordQueued(cancelled, at(0));
        await store.markRunning(cancelled.jobId, 1, "host-1", at(1));
        await store.finishJob(cancelled.jobId, 1, { state: "cancelled", reason: "cancelled by alice" }, at(2));
        assert.equal(await store.markRunning(cancelled.jobId, 2, "host-2", at(3)), false);
        // Given back only means something for a cancelled attempt.
        const failed = newJob();
        await store.recordQueued(failed, at(0));
        await store.markRunning(failed.jobId, 1, "host-1", at(1));
        await store.finishJob(failed.jobId, 1, { state: "failed", reason: "exit 1", givenBack: true }, at(2));
        assert.equal((await store.getJob(failed.jobId))?.givenBack, false);
        assert.equal(await store.markRunning(failed.jobId, 2, "host-2", at(3)), false);
      },
    );

    storeTest(
      "steps still pending when a job ends are skipped, and a step still running is cancelled",
      async (store) => {
        const job = newJob();
        await store.recordQueued(job, at(0));
        await store.markRunning(job.jobId, 1, "host-1", at(1));
        await store.stepStarted(job.jobId, 1, 0, at(2));
        await store.stepFinished(job.jobId, 1, 0, { state: "succeeded", conclusion: "succeeded", exitCode: 0 }, at(3));
        await store.stepStarted(job.jobId, 1, 1, at(4));
        assert.equal(
          await store.finishJob(job.jobId, 1, { state: "cancelled", reason: "cancelled by alice" }, at(5)),
          true,
        );

        const steps = (await store.getJob(job.jobId))?.steps;
        assert.deepEqual(
          steps?.map((s) => [s.state, s.conclusion]),
          [
            ["succeeded", "succeeded"],
            ["cancelled", "cancelled"],
            ["skipped", "skipped"],
          ],
        );
        assert.deepEqual(steps?.[1]?.finishedAt, at(5));
        assert.equal(steps?.[2]?.startedAt, null);
      },
    );

    storeTest("a job that nobody recorded as queued is recorded as running when its host claims it", async (store) => {
      const { jobId, attempt, ...details } = newJob({ source: "manual" });
      await assert.rejects(
        store.markRunning(jobId, attempt, "host-1", at(1)),
        (err: unknown) => err instanceof DbError && err.code === "unknown_job",
      );
      assert.equal(await store.markRunning(jobId, attempt, "host-1", at(1), details), true);
      assert.equal(await store.markRunning(jobId, attempt, "host-2", at(2), details), false);
      const record = await store.getJob(jobId);
      assert.equal(record?.state, "running");
      assert.equal(record?.hostId, "host-1");
      assert.equal(record?.source, "manual");
      assert.equal(record?.steps.length, 3);
    });

    storeTest("an unknown job reads as undefined", async (store) => {
      assert.equal(await store.getJob(randomUUID()), undefined);
    });

    storeTest("listJobs filters by state, label, host and repository and lists the newest first", async (store) => {
      const a = newJob({ label: "ubuntu-24.04" });
      const b = newJob({
        label: "debian-12",
        repoFullName: "acme/gadget",
        repoUrl: "https://forge.example/acme/gadget",
      });
      const c = newJob({ label: "ubuntu-24.04" });
      await store.recordQueued(a, at(0));
      await store.recordQueued(b, at(1));
      await store.recordQueued(c, at(2));
      await store.markRunning(a.jobId, 1, "host-1", at(3));
      await store.markRunning(b.jobId, 1, "host-2", at(4));

      const ids = async (filter: Parameters<JobStore["listJobs"]>[0]) =>
        (await store.listJobs(filter)).map((j) => j.jobId);
      assert.deepEqual(await ids({}), [c.jobId, b.jobId, a.jobId]);
      assert.deepEqual(await ids({ limit: 2 }), [c.jobId, b.jobId]);
      assert.deepEqual(await ids({ state: "running" }), [b.jobId, a.jobId]);
      assert.deepEqual(await ids({ label: "ubuntu-24.04" }), [c.jobId, a.jobId]);
      assert.deepEqual(await ids({ host: "host-2" }), [b.jobId]);
      assert.deepEqual(await ids({ repo: "acme/gadget" }), [b.jobId]);
      assert.deepEqual(await ids({ repo: "https://forge.example/acme/widget.git", state: "queued" }), [c.jobId]);
      assert.deepEqual((await store.listJobs({ state: "running" }))[0]?.steps.length, 3);
    });

    storeTest(
      "pruneJobs deletes finished jobs created before the cutoff with their steps; queued, running and newer ones stay",
      async (store) => {
        const [oldSucceeded, oldFailed, oldRunning, oldQueued, recent] = [
          newJob(),
          newJob(),
          newJob(),
          newJob(),
          newJob(),
        ];
        for (const job of [oldSucceeded, oldFailed, oldRunning, oldQueued]) await store.recordQueued(job, at(0));
        await store.recordQueued(recent, at(100));
        for (const job of [oldSucceeded, oldFailed, oldRunning, recent])
          await store.markRunning(job.jobId, 1, "host-1", at(101));
        await store.finishJob(oldSucceeded.jobId, 1, { state: "succeeded" }, at(102));
        await store.finishJob(oldFailed.jobId, 1, { state: "failed", reason: "make exited 2" }, at(102));
        await store.finishJob(recent.jobId, 1, { state: "succeeded" }, at(102));

        assert.equal(await store.pruneJobs(at(50)), 2);
        assert.equal(await store.getJob(oldSucceeded.jobId), undefined);
        assert.equal(await store.getJob(oldFailed.jobId), undefined);
        assert.deepEqual(
          (await store.listJobs({})).map((j) => j.jobId).sort(),
          [oldRunning.jobId, oldQueued.jobId, recent.jobId].sort(),
        );
        assert.equal((await store.getJob(recent.jobId))?.steps.length, 3);
        assert.equal(await store.pruneJobs(at(50)), 0, "a second prune finds nothing");
      },
    );

    storeTest("hosts are registered, heartbeat, and keep their draining flag across a restart", async (store) => {
      const host = {
        id: `host-${randomUUID()}`,
        labels: { "ubuntu-24.04": 2, "debian-12": 1 },
        maxVms: 3,
        version: "0.1.0",
        backend: "qemu",
        accelerator: "tcg",
        startedAt: at(0),
      };
      await store.upsertHost(host, at(0));
      assert.equal(await store.setDraining(host.id, true), true);
      assert.equal(await store.heartbeatHost(host.id, at(5)), true);
      await store.upsertHost({ ...host, version: "0.2.0", startedAt: at(100) }, at(100));
      assert.equal(await store.heartbeatHost(host.id, at(105)), true);

      assert.deepEqual(await store.listHosts(), [
        { ...host, version: "0.2.0", startedAt: at(100), draining: true, lastHeartbeatAt: at(105) },
      ]);
      assert.equal(await store.heartbeatHost("no-such-host", at(6)), false);
      assert.equal(await store.setDraining("no-such-host", true), false);
    });

    storeTest(
      "kept debug VMs are listed until they end or expire, and a restarted host forgets its own",
      async (store) => {
        const session = (hostId: string, expiresInSeconds: number) => ({
          jobId: randomUUID(),
          hostId,
          repository: "acme/widget",
          label: "ubuntu-24.04",
          sshHost: "ci-1.example",
          sshPort: 40_022,
          sshUser: "root",
          hostKeyFingerprint: "SHA256:host",
          allowed: [
            { who: "alice (forge)", fingerprint: "SHA256:alice" },
            { who: "operator", fingerprint: "SHA256:ops" },
          ],
          createdAt: at(0),
          expiresAt: at(expiresInSeconds),
        });
        const late = session("host-1", 1800);
        const soon = session("host-2", 600);
        const other = session("host-1", 900);
        for (const s of [late, soon, other]) await store.recordDebugSession(s);

        assert.deepEqual(await store.listDebugSessions(at(1)), [soon, other, late], "soonest expiry first");
        assert.deepEqual(
          (await store.listDebugSessions(at(700))).map((s) => s.jobId),
          [other.jobId, late.jobId],
          "an expired one is not listed",
        );
        assert.equal(await store.endDebugSession(other.jobId), true);
        assert.equal(await store.endDebugSession(other.jobId), false);
        assert.equal(await store.clearDebugSessions("host-1"), 1);
        assert.deepEqual(await store.listDebugSessions(at(1)), [soon]);
      },
    );
  });
}
