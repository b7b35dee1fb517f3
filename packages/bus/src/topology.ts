import type { Channel, ChannelModel } from "amqplib";
import { BusError, TopologyMismatchError } from "./errors.ts";
import { withOwnChannel } from "./own-channel.ts";

/** Every exchange and queue name of one namespace, in one place. */
export interface TopologyNames {
  readonly namespace: string;
  readonly jobsExchange: string;
  readonly deadLetterExchange: string;
  readonly deadLetterQueue: string;
  readonly eventsExchange: string;
  readonly controlExchange: string;
  labelQueue(label: string): string;
  ownerQueue(owner: string): string;
}

export function topologyNames(namespace: string): TopologyNames {
  checkName("namespace", namespace, NAMESPACE_PATTERN);
  return {
    namespace,
    jobsExchange: `${namespace}.jobs`,
    deadLetterExchange: `${namespace}.dlx`,
    deadLetterQueue: `${namespace}.dlq`,
    eventsExchange: `${namespace}.events`,
    controlExchange: `${namespace}.control`,
    labelQueue: (label) => `${namespace}.jobs.v1.${checkName("label", label, LABEL_PATTERN)}`,
    ownerQueue: (owner) => `${namespace}.events.${checkName("owner", owner, OWNER_PATTERN)}`,
  };
}

// Labels and owners become queue names and routing keys. An owner is one word of a topic routing
// key (`<owner>.<job_id>`), so it may not contain the topic separators `.`, `*` or `#`.
const NAMESPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const OWNER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

export function checkName(kind: string, value: string, pattern: RegExp = LABEL_PATTERN): string {
  if (!pattern.test(value)) {
    throw new BusError("invalid_name", `${kind} "${value}" is not allowed on the bus`, {
      hint: `a ${kind} is 1-100 characters of letters, digits${pattern === OWNER_PATTERN ? "" : ", ."}, _ and -, starting with a letter or digit`,
    });
  }
  return value;
}

export function checkOwner(owner: string): string {
  return checkName("owner", owner, OWNER_PATTERN);
}

/** A job id is the second word of an event routing key, with the same alphabet as an owner. */
export function checkJobId(jobId: string): string {
  return checkName("job id", jobId, OWNER_PATTERN);
}

/** Queue bounds and the redelivery limit; part of a queue's identity on the broker. */
export interface QueueLimits {
  /** Deliveries after which the broker dead-letters a job (e.g. it crashed every host that took it). */
  readonly deliveryLimit: number;
  /** Ready jobs per label queue; further publishes are refused (nacked), not dropped. */
  readonly maxQueuedJobs: number;
  /** Unconsumed events per owner queue; further publishes are refused. */
  readonly maxQueuedEvents: number;
  /** Dead letters kept; the oldest are dropped beyond it. */
  readonly maxDeadLetters: number;
  /** An owner queue with no consumer for this long is deleted by the broker (the owner has ended). */
  readonly ownerQueueExpiryMs: number;
}

function quorumQueueArguments(names: TopologyNames, deliveryLimit: number, maxLength: number) {
  return {
    "x-queue-type": "quorum",
    "x-delivery-limit": deliveryLimit,
    "x-dead-letter-exchange": names.deadLetterExchange,
    // At-least-once dead-lettering keeps a message until the dead-letter queue confirms it; the
    // broker requires reject-publish overflow for it, so a full queue refuses rather than drops.
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
    "x-max-length": maxLength,
  };
}

/** Exchanges, the dead-letter queue and its binding. Idempotent. */
export async function declareCoreTopology(model: ChannelModel, names: TopologyNames, limits: QueueLimits) {
  await withOwnChannel(model, async (channel) => {
    await declareStep(names.jobsExchange, () =>
      channel.assertExchange(names.jobsExchange, "direct", { durable: true }),
    );
    await declareStep(names.deadLetterExchange, () =>
      channel.assertExchange(names.deadLetterExchange, "fanout", { durable: true }),
    );
    await declareStep(names.eventsExchange, () =>
      channel.assertExchange(names.eventsExchange, "topic", { durable: true }),
    );
    await declareStep(names.controlExchange, () =>
      channel.assertExchange(names.controlExchange, "fanout", { durable: true }),
    );
    await declareStep(names.deadLetterQueue, () =>
      channel.assertQueue(names.deadLetterQueue, {
        durable: true,
        // Dead letters are for people to read; when nobody does, the oldest make room.
        arguments: { "x-max-length": limits.maxDeadLetters, "x-overflow": "drop-head" },
      }),
    );
    await declareStep(names.deadLetterQueue, () =>
      channel.bindQueue(names.deadLetterQueue, names.deadLetterExchange, ""),
    );
  });
}

/** The durable quorum queue of one label, bound to the jobs exchange. Idempotent. */
export async function declareLabelQueue(model: ChannelModel, names: TopologyNames, label: string, limits: QueueLimits) {
  const queue = names.labelQueue(label);
  await withOwnChannel(model, async (channel) => {
    await declareStep(queue, () =>
      channel.assertQueue(queue, {
        durable: true,
        arguments: quorumQueueArguments(names, limits.deliveryLimit, limits.maxQueuedJobs),
      }),
    );
    await declareStep(queue, () => channel.bindQueue(queue, names.jobsExchange, label));
  });
}

/**
 * Declares an owner's durable event queue on `model`, bound to `<owner>.#`. Idempotent. A single
 * active consumer, so even two processes that raced past the consumer check never split one
 * owner's events; and it expires once no owner consumes it for `ownerQueueExpiryMs`, so the queue
 * of an owner that ended (a JIT runner, a `ciadm run`) goes while a restarting one keeps its events.
 * A queue an older version declared without these arguments holds only events of jobs nobody
 * follows any more: it is replaced when unused.
 */
export async function declareOwnerQueue(
  model: ChannelModel,
  names: TopologyNames,
  owner: string,
  limits: QueueLimits,
  log: { warn(obj: object, msg: string): void },
): Promise<{ queue: string; consumerCount: number }> {
  const queue = names.ownerQueue(owner);
  const options = {
    durable: true,
    arguments: {
      ...quorumQueueArguments(names, limits.deliveryLimit, limits.maxQueuedEvents),
      "x-single-active-consumer": true,
      "x-expires": limits.ownerQueueExpiryMs,
    },
  };
  let declared: { consumerCount: number };
  try {
    declared = await withOwnChannel(model, (channel) => declareStep(queue, () => channel.assertQueue(queue, options)));
  } catch (error) {
    if (!(error instanceof TopologyMismatchError)) throw error;
    log.warn({ queue, mismatch: error.rawMessage }, "replacing an owner queue declared with other arguments");
    await withOwnChannel(model, (channel) => channel.deleteQueue(queue, { ifUnused: true }));
    declared = await withOwnChannel(model, (channel) => declareStep(queue, () => channel.assertQueue(queue, options)));
  }
  await withOwnChannel(model, (channel) =>
    declareStep(queue, () => channel.bindQueue(queue, names.eventsExchange, `${owner}.#`)),
  );
  return { queue, consumerCount: declared.consumerCount };
}

/** Deletes queues and exchanges, each on its own channel, so one already gone stops nothing. */
export async function deleteEntities(model: ChannelModel, queues: Iterable<string>, exchanges: Iterable<string>) {
  for (const queue of queues) {
    await deleteIfThere(model, (channel) => channel.deleteQueue(queue));
  }
  for (const exchange of exchanges) {
    await deleteIfThere(model, (channel) => channel.deleteExchange(exchange));
  }
}

async function declareStep<T>(entity: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (isPreconditionFailed(error)) {
      throw new TopologyMismatchError(entity, brokerText(error), { cause: error });
    }
    throw error;
  }
}

/** Deletes what may already be gone: a 404 (which also closes the channel) is the goal reached. */
async function deleteIfThere(model: ChannelModel, action: (channel: Channel) => Promise<unknown>): Promise<void> {
  await withOwnChannel(model, action).catch((error) => {
    if ((error as { code?: unknown }).code !== 404) throw error;
  });
}

function isPreconditionFailed(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 406;
}

function brokerText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const match = /PRECONDITION_FAILED - (.*)$/s.exec(text);
  return (match?.[1] ?? text).trim();
}
