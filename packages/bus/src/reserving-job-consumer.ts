import { randomUUID } from "node:crypto";
import type { ConsumeMessage } from "amqplib";
import type { Logger } from "pino";
import type { BusConnection } from "./connection.ts";
import {
  type ConsumeJobsOptions,
  type ConsumerChannel,
  closeWhenSettled,
  type JobConsumer,
  JobDispatcher,
} from "./job-consumer.ts";
import type { ConfirmPublisher } from "./publisher.ts";
import type { TopologyNames } from "./topology.ts";

// How long one wait for a reconnect lasts before arming logs and waits again.
const RECONNECT_WAIT_MS = 60_000;
// Wait before arming again after the broker closed a label's channel or refused its consumer
// (a queue being moved, a node going down), so a persistent refusal is not retried in a loop.
const REARM_DELAY_MS = 1_000;

interface LabelConsumer {
  readonly label: string;
  readonly queue: string;
  /** A slot of this label is held for the next delivery of the consumer. */
  reserved: boolean;
  /** The tag of the live consumer, set before basic.consume is sent. */
  tag: string | undefined;
  /** The label's own channel: basic.cancel must never queue behind another call (see onDelivery). */
  channel: ConsumerChannel | undefined;
  arming: Promise<void> | undefined;
}

/**
 * Takes jobs with one consumer per label, prefetch 1, armed only while a slot of that label is
 * reserved for its next delivery: so, as with polling, this host never holds a delivery it cannot
 * start now (docs/decisions/0002), but an idle host sends the broker nothing. Before arming, it
 * asks the queue once (basic.get with the reserved slot), so under a backlog jobs are taken one
 * request each, as by polling, and the consumer is only armed once the queue was seen empty.
 *
 * When a delivery arrives, the reserved slot becomes its job's. Before the job is dispatched (and
 * so before its ack can open the prefetch window again), the consumer reserves the next slot, or,
 * if the label is full, sends basic.cancel; with prefetch 1 nothing else can be on the wire.
 * A release re-arms the label. The reservation is counted like a running job, so this needs a gate
 * in which one label's reservation never keeps another label from reserving (`JobTaking`).
 */
export class ReservingJobConsumer implements JobConsumer {
  private stopping = false;
  private readonly stopSignal = new AbortController();
  private readonly labels: LabelConsumer[];
  private readonly dispatcher: JobDispatcher;
  private readonly unsubscribe: () => void;
  private nextLabel = 0;
  /** Counts releases, so an arm that ran beside one looks again (its slot check may predate it). */
  private releases = 0;

  constructor(
    private readonly connection: BusConnection,
    publisher: ConfirmPublisher,
    names: TopologyNames,
    private readonly log: Logger,
    private readonly opts: ConsumeJobsOptions,
  ) {
    this.labels = opts.labels.map((label) => ({
      label,
      queue: names.labelQueue(label),
      reserved: false,
      tag: undefined,
      channel: undefined,
      arming: undefined,
    }));
    this.dispatcher = new JobDispatcher(publisher, names, log, opts, (consumer) => {
      if (this.stopping) closeWhenSettled(consumer, log);
    });
    this.unsubscribe = opts.slots.onRelease(() => {
      this.releases++;
      this.armAll();
    });
    this.armAll();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopSignal.abort();
    this.unsubscribe();
    await Promise.all(this.labels.map((l) => l.arming));
    await Promise.all(
      this.labels.map(async (l) => {
        const { tag, channel } = l;
        l.tag = undefined;
        if (tag && channel && !channel.closed) {
          // A delivery that arrives before cancel-ok still has its reserved slot and reaches onJob.
          await channel.channel.cancel(tag).catch((error: unknown) => {
            this.log.debug({ err: error, queue: l.queue }, "job consumer was already gone at stop");
          });
        }
        if (l.reserved) {
          l.reserved = false;
          this.opts.slots.release(l.label);
        }
        if (channel) closeWhenSettled(channel, this.log);
      }),
    );
  }

  /** Arms every label that is not, starting one further each time so no label always comes last. */
  private armAll() {
    if (this.stopping) return;
    const count = this.labels.length;
    for (let i = 0; i < count; i++) {
      const l = this.labels[(this.nextLabel + i) % count] as LabelConsumer;
      if (!l.tag && !l.arming) {
        const releases = this.releases;
        l.arming = this.arm(l).finally(() => {
          l.arming = undefined;
          if (this.releases !== releases && !l.tag) this.armAll();
        });
      }
    }
    this.nextLabel = (this.nextLabel + 1) % Math.max(1, count);
  }

  private async arm(l: LabelConsumer): Promise<void> {
    for (let attempt = 0; !this.stopping; attempt++) {
      if (!l.reserved) {
        // No slot: the next release arms this label again.
        if (!this.opts.slots.tryAcquire(l.label)) return;
        l.reserved = true;
      }
      const tag = `${l.queue}.${randomUUID()}`;
      try {
        const consumer = await this.labelChannel(l);
        if (this.stopping) return;
        // Ask once before subscribing: with a backlog the job is taken in one request, where a
        // consumer would cost a subscribe and, once the label is full, a cancel per job.
        const waiting = await consumer.channel.get(l.queue, { noAck: false });
        if (waiting !== false) {
          l.reserved = false;
          await this.dispatcher.dispatch(consumer, l.label, waiting);
          continue;
        }
        if (this.stopping) return;
        // Set first: the first delivery can be handled before consume-ok's promise settles.
        l.tag = tag;
        await consumer.channel.consume(l.queue, (message) => this.onDelivery(l, consumer, tag, message), {
          noAck: false,
          consumerTag: tag,
        });
        return;
      } catch (error) {
        if (l.tag === tag) l.tag = undefined;
        if (this.stopping) return;
        this.log.warn({ err: error, queue: l.queue, attempt }, "cannot subscribe to a label queue yet; retrying");
        await this.pause(REARM_DELAY_MS);
      }
    }
  }

  private onDelivery(l: LabelConsumer, consumer: ConsumerChannel, tag: string, message: ConsumeMessage | null) {
    if (message === null) {
      // The broker cancelled the consumer (its queue was deleted or moved): arm again shortly.
      if (l.tag === tag) l.tag = undefined;
      if (!this.stopping) setTimeout(() => this.armAll(), REARM_DELAY_MS).unref();
      return;
    }
    // This delivery takes the reserved slot.
    l.reserved = false;
    if (l.tag === tag && !this.stopping) {
      if (this.opts.slots.tryAcquire(l.label)) {
        l.reserved = true;
      } else {
        // Full: unsubscribe before this job's ack lets the broker send another. The label's
        // channel runs no other call while a consumer is live, so the cancel is written now.
        l.tag = undefined;
        consumer.channel.cancel(tag).catch((error: unknown) => {
          this.log.debug({ err: error, queue: l.queue }, "cancelling a full label's consumer failed");
        });
      }
    }
    this.dispatcher.dispatch(consumer, l.label, message).catch((error: unknown) => {
      this.log.error({ err: error, queue: l.queue }, "dispatching a job failed");
    });
  }

  private async labelChannel(l: LabelConsumer): Promise<ConsumerChannel> {
    if (l.channel && !l.channel.closed) return l.channel;
    const model = await this.connection.ready(RECONNECT_WAIT_MS, this.stopSignal.signal);
    const channel = await model.createChannel();
    const consumer: ConsumerChannel = { channel, closed: false, unsettled: 0 };
    channel.on("error", (error: unknown) =>
      this.log.warn({ err: error, queue: l.queue }, "the broker closed a job channel"),
    );
    channel.on("close", () => {
      consumer.closed = true;
      if (l.channel !== consumer) return;
      // Unsettled deliveries went back to the queue with the channel; the reservation stays.
      l.channel = undefined;
      l.tag = undefined;
      if (!this.stopping) setTimeout(() => this.armAll(), REARM_DELAY_MS).unref();
    });
    await channel.prefetch(1);
    l.channel = consumer;
    return consumer;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const signal = this.stopSignal.signal;
      signal.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
    });
  }
}
