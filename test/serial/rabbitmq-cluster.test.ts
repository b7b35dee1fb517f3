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
    const { lost, ranTwice, eventDuplicates } = await outcome.settled(confirmed, 180_000);
    t.diagnostic(
      `node ${stopped} stopped: ${confirmed.length} confirmed, ${refused} refused, lost ${lost}, ran twice ${ranTwice}, events delivered twice to the owner ${eventDuplicates}`,
    );
    assert.ok(confirmed.length > 0);
    assert.equal(lost, 0, "every confirmed job ran and ended");
    assert.equal(ranTwice, 0, "no job ran twice");
  } finally {
    if (stopped !== undefined) await cluster.startNode(stopped);
    await hosts.close();
  }
});

test("one node cut off from its clients by a TCP relay for longer than the lease: no job runs twice and none is lost", {
  timeout: 300_000,
}, async (t) => {
  const relay = await startRelay(new URL(cluster.urls[2] as string));
  const relayed = `amqp://guest:guest@127.0.0.1:${relay.port}`;
  // Host A reaches the cluster only through the relay to node 3; host B through nodes 1 and 2.
  // Cut for 10 s, past A's own limit (lease − 2 × heartbeat = 6 s, when it gives its jobs up and
  // drops their events) and past the owner's lease (8 s, when it retries the silent attempts).
  // What A held at the cut must end once: a job A finished but could not report is answered from
  // its record when the owner retries it, and a job A had claimed but not yet announced waits
  // for the broker before it starts, so its owner hears of it and no other host runs it.
  // Jobs of 400 ms leave work in the queue when A comes back, so A takes jobs in the moment right
  // after its reconnect (with 200 ms B had emptied the queue by then and that moment went untested).
  const CUT_MS = 10_000;
  const hosts = await startHosts(1, "part=4", relayed, { jobMs: 400, leaseMs: 8_000 });
  const other = await hosts.addHosts(1, "part=4", [cluster.urls[0], cluster.urls[1]].join(","));
  try {
    const jobs = Array.from({ length: 300 }, () => tinyJob(hosts.owner, [], { runsOn: "part" }));
    const outcome = hosts.follow(jobs);
    await Promise.all(jobs.map((job) => hosts.lease(job)));
    await outcome.accepted(50, 60_000);
    relay.cut();
    await new Promise((resolve) => setTimeout(resolve, CUT_MS));
    relay.restore();
    const { lost, ranTwice, answeredFromRecord, unannounced, byHost, eventDuplicates } = await outcome.settled(
      jobs,
      180_000,
    );
    t.diagnostic(
      `cut for ${CUT_MS / 1000} s: runs per host ${JSON.stringify(Object.fromEntries(byHost))}, lost ${lost}, ran twice ${ranTwice}, ended from the record ${answeredFromRecord}, ended unannounced ${unannounced}, events delivered twice to the owner ${eventDuplicates}`,
    );
    assert.equal(lost, 0, "every job ran and ended");
    assert.equal(ranTwice, 0, "no job ran twice");
    assert.equal(unannounced, 0, "no job ran before its owner heard which host took it");
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
    const { lost, ranTwice, byHost, eventDuplicates } = await outcome.settled(jobs, 180_000);
    t.diagnostic(
      `node 3 partitioned for ${healedAt - partitionedAt} ms, all settled ${Date.now() - healedAt} ms after healing (node 3 saw ${JSON.stringify(cutOff)}, node 1 saw ${JSON.stringify(majority)}): runs per host ${JSON.stringify(Object.fromEntries(byHost))}, lost ${lost}, ran twice ${ranTwice}, events delivered twice to the owner ${eventDuplicates}`,
    );
    assert.deepEqual(cutOff, { peers: [], running: false }, "node 3 saw no peer and paused as a minority");
    assert.deepEqual(majority.peers, [2], "nodes 1 and 2 kept each other and lost node 3");
    assert.equal(lost, 0, "every job ran and ended");
    assert.equal(ranTwice, 0, "no job ran twice");
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
  /** Resolves once the owner saw every one of `jobs` end (or `timeoutMs` passed), then 2 s more. */
  settled(jobs: readonly JobRequest[], timeoutMs: number): Promise<Settled>;
}

/**
 * Counted from the hosts' side (a job "runs" when a host's runner starts it) and the owner's (a
 * job "ends" with the JobFinished of the attempt its lease watch follows).
 */
interface Settled {
  /** Jobs whose owner saw no successful end, or that never ran at all. */
  lost: number;
  /** Jobs that ran more than once, on any hosts. */
  ranTwice: number;
  /** Ends for an attempt that never ran: a host answered a retried attempt from the job's record. */
  answeredFromRecord: number;
  /** Ends for an attempt that ran without its owner having heard its Accepted first. */
  unannounced: number;
  /** Runs per host. */
  byHost: Map<string, number>;
  /** Events the broker delivered twice to the owner (same attempt and number). */
  eventDuplicates: number;
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
  /** The owner's end of each job: the JobFinished of the attempt its lease watch follows. */
  const ends = new Map<string, { result: Outcome; attempt: number; announced: boolean }>();
  const announced = new Set<string>();
  listeners.add((event) => {
    if (!leases.get(event.jobId)?.observe(event)) return;
    const key = `${event.jobId}/${event.attempt}`;
    if (event.body.case === "accepted") announced.add(key);
    if (event.body.case === "jobFinished") {
      ends.set(event.jobId, { result: event.body.value.result, attempt: event.attempt, announced: announced.has(key) });
    }
  });
  /** Every real run, as `jobId/attempt`, with the host that ran it. */
  const runs: Array<{ jobId: string; attempt: number; host: string }> = [];

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
          onRun: (jobId, attempt) => runs.push({ jobId, attempt, host: hostId }),
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
      let eventDuplicates = 0;
      listeners.add((event) => {
        if (!wanted.has(event.jobId)) return;
        const key = `${event.jobId}/${event.attempt}/${event.seq}`;
        if (seen.has(key)) eventDuplicates++;
        seen.add(key);
        if (event.body.case === "accepted") accepted.add(event.jobId);
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
          await until(() => settledJobs.every((j) => ends.has(j.jobId)), timeoutMs, "every job ended").catch(
            () => undefined,
          );
          // A little longer, so a second run of some job would be seen.
          await new Promise((resolve) => setTimeout(resolve, 2_000));
          const runsOf = new Map<string, number>();
          const byHost = new Map<string, number>();
          for (const run of runs) {
            if (!wanted.has(run.jobId)) continue;
            runsOf.set(run.jobId, (runsOf.get(run.jobId) ?? 0) + 1);
            byHost.set(run.host, (byHost.get(run.host) ?? 0) + 1);
          }
          const ran = new Set(runs.map((run) => `${run.jobId}/${run.attempt}`));
          return {
            lost: settledJobs.filter(
              (j) => ends.get(j.jobId)?.result !== Outcome.SUCCESS || (runsOf.get(j.jobId) ?? 0) === 0,
            ).length,
            ranTwice: [...runsOf.values()].filter((count) => count > 1).length,
            answeredFromRecord: settledJobs.filter((j) => {
              const end = ends.get(j.jobId);
              return end !== undefined && !ran.has(`${j.jobId}/${end.attempt}`);
            }).length,
            unannounced: settledJobs.filter((j) => {
              const end = ends.get(j.jobId);
              return end !== undefined && ran.has(`${j.jobId}/${end.attempt}`) && !end.announced;
            }).length,
            byHost,
            eventDuplicates,
          };
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
