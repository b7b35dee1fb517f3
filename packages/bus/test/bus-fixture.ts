import { randomUUID } from "node:crypto";
import { create, type JobRequest, JobRequestSchema, JobSource, SCHEMA_VERSION } from "@solstice/protocol";
import amqp, { type Channel, type ChannelModel } from "amqplib";
import { pino } from "pino";
import { type Bus, type BusOptions, connectBus } from "../src/index.ts";

export const AMQP_URL = process.env.SOLSTICE_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

export const testLog = pino({ level: process.env.LOG_LEVEL ?? "silent" });

/** A namespace of its own per test, so tests can run in parallel and twice in a row. */
export function uniqueNamespace(): string {
  return `test-${randomUUID()}`;
}

export async function openBus(namespace: string, opts: Partial<BusOptions> = {}): Promise<Bus> {
  return connectBus({
    url: AMQP_URL,
    namespace,
    log: testLog,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    connectTimeoutMs: 5_000,
    ...opts,
  });
}

/** A `connect` for the bus that keeps each connection it opens in `models`, for a test to cut. */
export function recordingConnect(models: ChannelModel[]): NonNullable<BusOptions["connect"]> {
  return async (url, socketOptions) => {
    const model = await amqp.connect(url, socketOptions);
    models.push(model);
    return model;
  };
}

/** A plain amqplib channel, to look at queues and publish what our Bus never would. */
export async function rawChannel(): Promise<{ channel: Channel; connection: ChannelModel }> {
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createChannel();
  return { channel, connection };
}

type JobInit = NonNullable<Parameters<typeof create<typeof JobRequestSchema>>[1]>;

export function makeJob(runsOn: string, fields: JobInit = {}): JobRequest {
  return create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: randomUUID(),
    attempt: 1,
    source: JobSource.MANUAL,
    owner: "runner-a",
    runsOn,
    jobName: "build",
    workflowPath: ".forgejo/workflows/ci.yml",
    timeoutSeconds: 600,
    ...fields,
  });
}

/** Resolves with the value `poll` returns once it is not undefined; fails after `timeoutMs`. */
export async function eventually<T>(poll: () => Promise<T | undefined> | T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await poll();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** What `withLabelQueues` hands its body. */
export interface LabelQueuesFixture {
  bus: Bus;
  namespace: string;
  /** A plain channel beside the bus, to look at the queues. */
  raw: { channel: Channel; connection: ChannelModel };
  /** The queue name of a label in this namespace. */
  queue(label: string): string;
}

/**
 * Runs `body` with a bus in a namespace of its own, its topology and the queues of `labels`
 * declared, and a raw channel beside it; closes both and deletes the namespace afterwards.
 */
export async function withLabelQueues<T>(
  labels: readonly string[],
  body: (fixture: LabelQueuesFixture) => Promise<T>,
  opts: Partial<BusOptions> = {},
): Promise<T> {
  const namespace = uniqueNamespace();
  const bus = await openBus(namespace, opts);
  const raw = await rawChannel();
  try {
    await bus.declareTopology();
    for (const label of labels) await bus.ensureLabelQueue(label);
    return await body({ bus, namespace, raw, queue: (label) => `${namespace}.jobs.v1.${label}` });
  } finally {
    await raw.connection.close();
    await bus.deleteNamespace();
    await bus.close();
  }
}
