import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { connectBus } from "@solstice/bus";
import { createPgJobStore, migrate } from "@solstice/db";
import { LeaseWatch } from "@solstice/executor";
import {
  ControlSchema,
  create,
  EventOrder,
  type JobEvent,
  type JobRequest,
  LogStream,
  Outcome,
  SCHEMA_VERSION,
} from "@solstice/protocol";
import { pino } from "pino";
import { type NullHost, startNullHost } from "../../bench/null-host.ts";
import { DATABASE_URL, dropSchema, startTestFleet, tinyJob, waitForFirstStepRunning } from "../support/fleet.ts";
import { startTestCluster, type TestCluster } from "../support/rabbitmq-cluster.ts";
import { TEST_LABEL } from "../support/start-mode.ts";
import { startRelay } from "../support/tcp-relay.ts";

// A three-node RabbitMQ cluster of its own (scripts/rabbitmq-cluster.sh on ports 5691-5693), whose
// nodes these tests stop and cut off; every service gets all three URLs. Serial only because
// starting three brokers takes two cores for half a minute.
const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });
let cluster: TestCluster;

before(async () => {
  cluster = await startTestCluster();
});
after(async () => {
  await cluster?.close();
});

test("the node leading the job's label queue is stopped mid-job: the job finishes, every event once and in order (tiny guest, TCG)", {
  timeout: 400_000,
}, async (t) => {
  const LINES = 30;
  // A lease long enough to outlast the move to another node: the host must keep the job.
  const fleet = await startTestFleet("tiny=1", {
    amqpUrl: cluster.urls.join(","),
    env: { SOLSTICE_LEASE_MS: "120000" },
  });
  let stopped: number | undefined;
  try {
    const job = tinyJob(fleet.owner, [
      { name: "count", run: `for i in $(seq 1 ${LINES}); do echo "line $i"; sleep 0.5; done` },
    ]);
    const finished = fleet.runToEnd(job, 360_000);
    await waitForFirstStepRunning(fleet.store, job.jobId, 180_000);
    stopped = await cluster.leaderOf(`${fleet.namespace}.jobs.v1.${TEST_LABEL}`);
    const ownerLeader = await cluster.leaderOf(`${fleet.namespace}.events.${fleet.owner}`);
    await cluster.stopNode(stopped);
    t.diagnostic(
      `stopped node ${stopped}, leader of the label queue (the owner's queue was led by node ${ownerLeader})`,
    );

    // Delivery is at least once: an event the stopped node had handed out but not seen acked comes
    // again from the new leader. Owners put events through EventOrder (forge-relay, ciadm), so
    // "once and in order" is what EventOrder hands on; the raw redeliveries are reported.
    const delivered = await finished;
    const order = new EventOrder();
    const events = delivered.flatMap((event) => order.push(event));
    const seqs = events.map((e) => Number(e.seq));
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 1),
      "events numbered 1..n, in order, with no gap",
    );
    assert.equal(order.expected, BigInt(seqs.length + 1), "no event left waiting behind a gap");
    t.diagnostic(`${delivered.length - events.length} event(s) delivered twice to the owner, dropped by seq`);
    const lines = events
      .flatMap((e) => (e.body.case === "log" ? e.body.value.lines : []))
      .filter((l) => l.stream === LogStream.STDOUT)
      .map((l) => l.text);
    assert.deepEqual(
      lines,
      Array.from({ length: LINES }, (_, i) => `line ${i + 1}`),
    );
    const end = events.find((e) => e.body.case === "jobFinished");
    assert.equal(end?.body.case === "jobFinished" && end.body.value.result, Outcome.SUCCESS);
    assert.equal((await fleet.store.getJob(job.jobId))?.state, "succeeded");
  } finally {
    if (stopped !== undefined) await cluster.startNode(stopped);
    await fleet.close();
  }
});

test("a node is stopped during a burst of 1,000 publishes: every confirmed job runs exactly once", {
  timeout: 300_000,
}, async (t) => {
  const hosts = await startHosts(2, "burst=8", cluster.urls.join(","), { jobMs: 20, leaseMs: 15_000 });
  let stopped: number | undefined;
  try {
    const jobs = Array.from({ length: 1_000 }, () => tinyJob(hosts.owner, [], { runsOn: "burst" }));
    stopped = await cluster.leaderOf(`${hosts.namespace}.jobs.v1.burst`);
    const outcome = hosts.follow(jobs);
    // Publish one after another (as a forge relay does), stopping the queue's leader at the 300th.
    const confirmed: JobRequest[] = [];
    let refused = 0;
    await Promise.all(
      jobs.map(async (job, i) => {
        if (i === 300) void cluster.stopNode(stopped as number);
        try {
          await hosts.lease(job);
          confirmed.push(job);
        } catch {
          refused++;
        }
      }),
    );
    const { runs, eventDuplicates } = await outcome.settled(confirmed, 180_000);
    const lost = confirmed.filter((job) => (runs.get(job.jobId) ?? 0) === 0).length;
    const duplicated = [...runs.values()].filter((count) => count > 1).length;
    t.diagnostic(
      `node ${stopped} stopped: ${confirmed.length} confirmed, ${refused} refused, lost ${lost}, duplicated ${duplicated}, events delivered twice to the owner ${eventDuplicates}`,
    );
    assert.ok(confirmed.length > 0);
    assert.equal(lost, 0, "every confirmed job ran");
    assert.equal(duplicated, 0, "no job ran twice");
  } finally {
    if (stopped !== undefined) await cluster.startNode(stopped);
    await hosts.close();
  }
});

test("one node cut off from its clients by a TCP relay mid-stream: no job runs twice and none is lost", {
  timeout: 300_000,
}, async (t) => {
  const relay = await startRelay(new URL(cluster.urls[2] as string));
  const relayed = `amqp://guest:guest@127.0.0.1:${relay.port}`;
  // Host A reaches the cluster only through the relay to node 3; host B through nodes 1 and 2.
  const hosts = await startHosts(1, "part=4", relayed, { jobMs: 200, leaseMs: 8_000 });
  const other = await hosts.addHosts(1, "part=4", [cluster.urls[0], cluster.urls[1]].join(","));
  try {
    const jobs = Array.from({ length: 300 }, () => tinyJob(hosts.owner, [], { runsOn: "part" }));
    const outcome = hosts.follow(jobs);
    await Promise.all(jobs.map((job) => hosts.lease(job)));
    await outcome.accepted(50, 60_000);
    relay.cut();
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    relay.restore();
    const { runs, byHost } = await outcome.settled(jobs, 180_000);
    const lost = jobs.filter((job) => (runs.get(job.jobId) ?? 0) === 0).length;
    const duplicated = [...runs.values()].filter((count) => count > 1).length;
    t.diagnostic(
      `cut for 4 s: jobs per host ${JSON.stringify(Object.fromEntries(byHost))}, lost ${lost}, duplicated ${duplicated}`,
    );
    assert.equal(lost, 0);
    assert.equal(duplicated, 0, "no job ran twice");
  } finally {
    relay.restore();
    await other.close();
    await hosts.close();
    await relay.close();
  }
});

test("one node partitioned from the other two at the Erlang level mid-stream: it pauses, no job runs twice and none is lost", {
  timeout: 300_000,
}, async (t) => {
  // Host A reaches the cluster only through node 3, host B through nodes 1 and 2. The lease
  // outlasts the partition, so host A keeps its jobs: what a second run would come from is a job
  // delivered again when node 3 drops A's channels, and the claim in PostgreSQL must refuse it.
  const hosts = await startHosts(1, "split=4", cluster.urls[2] as string, { jobMs: 200, leaseMs: 30_000 });
  const other = await hosts.addHosts(1, "split=4", [cluster.urls[0], cluster.urls[1]].join(","));
  let healed = false;
  try {
    const jobs = Array.from({ length: 300 }, () => tinyJob(hosts.owner, [], { runsOn: "split" }));
    const outcome = hosts.follow(jobs);
    await Promise.all(jobs.map((job) => hosts.lease(job)));
    await outcome.accepted(50, 60_000);
    const partitionedAt = Date.now();
    await cluster.partition(3);
    // pause_minority takes node 3 down a moment after it sees the others go.
    let cutOff = await cluster.view(3);
    for (const deadline = Date.now() + 20_000; cutOff.running && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      cutOff = await cluster.view(3);
    }
    const majority = await cluster.view(1);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    await cluster.heal(3);
    healed = true;
    const healedAt = Date.now();
    const { runs, byHost, eventDuplicates } = await outcome.settled(jobs, 180_000);
    const lost = jobs.filter((job) => (runs.get(job.jobId) ?? 0) === 0).length;
    const duplicated = [...runs.values()].filter((count) => count > 1).length;
    t.diagnostic(
      `node 3 partitioned for ${healedAt - partitionedAt} ms, all settled ${Date.now() - healedAt} ms after healing (node 3 saw ${JSON.stringify(cutOff)}, node 1 saw ${JSON.stringify(majority)}): jobs per host ${JSON.stringify(Object.fromEntries(byHost))}, lost ${lost}, duplicated ${duplicated}, events delivered twice to the owner ${eventDuplicates}`,
    );
    assert.deepEqual(cutOff, { peers: [], running: false }, "node 3 saw no peer and paused as a minority");
    assert.deepEqual(majority.peers, [2], "nodes 1 and 2 kept each other and lost node 3");
    assert.equal(lost, 0, "every job ran");
    assert.equal(duplicated, 0, "no job ran twice");
  } finally {
    if (!healed) await cluster.heal(3);
    await other.close();
    await hosts.close();
  }
});

interface NullHosts {
  readonly owner: string;
  readonly namespace: string;
  /** Publishes a job under the owner's lease watch (retried once if its attempt goes silent). */
  lease(job: JobRequest): Promise<void>;
  /** Follows the jobs' events at the owner. */
  follow(jobs: readonly JobRequest[]): FollowedJobs;
  addHosts(count: number, capacity: string, amqpUrl: string): Promise<{ close(): Promise<void> }>;
  close(): Promise<void>;
}

interface FollowedJobs {
  /** Resolves once `count` jobs were accepted. */
  accepted(count: number, timeoutMs: number): Promise<void>;
  /**
   * Resolves once every one of `jobs` finished: `runs` is how many attempts of each ran to a
   * JobFinished, `byHost` how many each host finished; events the broker delivered twice to the
   * owner (same attempt and number) are counted apart and not as runs.
   */
  settled(
    jobs: readonly JobRequest[],
    timeoutMs: number,
  ): Promise<{ runs: Map<string, number>; byHost: Map<string, number>; eventDuplicates: number }>;
}

/** Orchestrators whose jobs boot nothing (bench/null-job.ts), in a namespace and schema of their own. */
async function startHosts(
  count: number,
  capacity: string,
  amqpUrl: string,
  timing: { jobMs: number; leaseMs: number },
): Promise<NullHosts> {
  const id = randomUUID().slice(0, 8);
  const namespace = `test-${id}`;
  const schema = `test_${id}`;
  const owner = `owner-${id}`;
  await migrate({ databaseUrl: DATABASE_URL, schema, log });
  const { store, close: closeStore } = createPgJobStore({ databaseUrl: DATABASE_URL, schema, log });
  const ownerBus = await connectBus({ url: cluster.urls.join(","), namespace, log });
  const groups: Array<{ close(): Promise<void> }> = [];
  const listeners = new Set<(event: JobEvent) => void>();
  const subscription = await ownerBus.consumeEvents({
    owner,
    prefetch: 256,
    onEvent: async (event) => {
      for (const listener of listeners) listener(event);
    },
  });
  const leases = new Map<string, LeaseWatch>();
  listeners.add((event) => leases.get(event.jobId)?.observe(event));

  const addHosts = async (n: number, hostCapacity: string, url: string) => {
    const started: NullHost[] = [];
    for (let i = 0; i < n; i++) {
      const hostId = `host-${id}-${groups.length}-${i}`;
      started.push(
        await startNullHost({
          amqpUrl: url,
          databaseUrl: DATABASE_URL,
          schema,
          namespace,
          hostId,
          capacity: hostCapacity,
          ...timing,
          heartbeatMs: 1000,
          store,
          log,
        }),
      );
    }
    const group = {
      async close() {
        for (const host of started) await host.close();
      },
    };
    groups.push(group);
    return group;
  };
  await addHosts(count, capacity, amqpUrl);

  return {
    owner,
    namespace,
    addHosts,
    lease(job) {
      const watch = new LeaseWatch({
        request: job,
        leaseMs: timing.leaseMs,
        maxAttempts: 2,
        publish: (request) => ownerBus.publishJob(request),
        cancel: (jobId, attempt, reason) =>
          ownerBus.publishControl(
            create(ControlSchema, {
              schemaVersion: SCHEMA_VERSION,
              command: { case: "cancel", value: { jobId, attempt, reason } },
            }),
          ),
        onLost: () => undefined,
        log,
      });
      leases.set(job.jobId, watch);
      return watch.start();
    },
    follow(jobs) {
      const wanted = new Set(jobs.map((j) => j.jobId));
      const seen = new Set<string>();
      const accepted = new Set<string>();
      const finishedAttempts = new Map<string, Set<number>>();
      const byHost = new Map<string, number>();
      const hostOf = new Map<string, string>();
      let eventDuplicates = 0;
      listeners.add((event) => {
        if (!wanted.has(event.jobId)) return;
        const key = `${event.jobId}/${event.attempt}/${event.seq}`;
        if (seen.has(key)) {
          eventDuplicates++;
          return;
        }
        seen.add(key);
        if (event.body.case === "accepted") {
          accepted.add(event.jobId);
          hostOf.set(`${event.jobId}/${event.attempt}`, event.body.value.host);
        }
        if (event.body.case === "jobFinished" && event.body.value.result === Outcome.SUCCESS) {
          const attempts = finishedAttempts.get(event.jobId) ?? new Set<number>();
          attempts.add(event.attempt);
          finishedAttempts.set(event.jobId, attempts);
          const host = hostOf.get(`${event.jobId}/${event.attempt}`) ?? "unknown";
          byHost.set(host, (byHost.get(host) ?? 0) + 1);
        }
      });
      const until = async (done: () => boolean, timeoutMs: number, what: string) => {
        const deadline = Date.now() + timeoutMs;
        while (!done()) {
          if (Date.now() > deadline) throw new Error(`${what} not reached in ${timeoutMs} ms`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      return {
        accepted: (n, timeoutMs) => until(() => accepted.size >= n, timeoutMs, `${n} jobs accepted`),
        async settled(settledJobs, timeoutMs) {
          await until(
            () => settledJobs.every((j) => finishedAttempts.has(j.jobId)),
            timeoutMs,
            "every job finished",
          ).catch(() => undefined);
          // A little longer, so a second run of some job would be seen.
          await new Promise((resolve) => setTimeout(resolve, 2_000));
          const runs = new Map(settledJobs.map((j) => [j.jobId, finishedAttempts.get(j.jobId)?.size ?? 0]));
          return { runs, byHost, eventDuplicates };
        },
      };
    },
    async close() {
      for (const lease of leases.values()) lease.stop();
      for (const group of groups) await group.close();
      await subscription.stop();
      await ownerBus.ensureLabelQueue("burst");
      await ownerBus.ensureLabelQueue("part");
      await ownerBus.ensureLabelQueue("split");
      await ownerBus.deleteNamespace();
      await ownerBus.close();
      await closeStore();
      await dropSchema(schema);
    },
  };
}
