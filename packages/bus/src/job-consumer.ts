import { decodeJobRequest, type JobRequest, UndecodableMessageError } from "@solstice/protocol";
import type { Channel, GetMessage } from "amqplib";
import type { Logger } from "pino";
import type { BusConnection } from "./connection.ts";
import { type DeadLetterReason, republishToDeadLetters } from "./dead-letter.ts";
import { BusError, DeliveryLostError } from "./errors.ts";
import type { ConfirmPublisher } from "./publisher.ts";
import type { SlotGate } from "./slot-gate.ts";
import type { TopologyNames } from "./topology.ts";

/** One job taken from its label queue. Settle it exactly once. */
export interface JobDelivery {
  /** The label queue it came from; release the slot of this label when the job is over. */
  readonly label: string;
  /** `"<job_id>/<attempt>"`, the AMQP messageId. */
  readonly messageId: string | undefined;
  /** The broker delivered it before (another host took it and did not ack). */
  readonly redelivered: boolean;
  /** Removes the job from its queue: call only after its acceptance is recorded. */
  ack(): Promise<void>;
  /** Moves the job to the dead-letter queue with `reason`, confirmed, then removes it. */
  reject(reason: string): Promise<void>;
  /** Puts the job back in its queue for any host (counts towards the delivery limit). */
  requeue(): Promise<void>;
}

export interface JobConsumer {
  /**
   * Stops taking jobs; deliveries already handed out stay settleable. Resolves once no fetch is in
   * progress (a job fetched just before still reaches onJob).
   */
  stop(): Promise<void>;
}

export interface ConsumeJobsOptions {
  labels: readonly string[];
  slots: SlotGate;
  /**
   * Called with each job, its slot already taken. Resolve once the job is accepted (not when it
   * ends). If it throws, the consumer requeues an unsettled delivery and releases the slot.
   */
  onJob(job: JobRequest, delivery: JobDelivery): Promise<void>;
  /** How often empty label queues are asked again while idle. Default 200. */
  pollIntervalMs?: number;
}

// How long one wait for a reconnect lasts before the consumer logs and waits again.
const RECONNECT_WAIT_MS = 60_000;

interface ConsumerChannel {
  channel: Channel;
  closed: boolean;
  unsettled: number;
}

/**
 * Takes jobs with basic.get, one per free slot, so this host never holds a delivery it cannot
 * start now: a held message is invisible to every other host. Consumers with prefetch cannot give
 * that: prefetch bounds each queue on its own, not a total across label queues, and cancelling a
 * consumer when slots run out races with deliveries already on the wire, which would then have to
 * be requeued (each requeue counts towards the delivery limit). The price is polling idle queues
 * every `pollIntervalMs`, a few cheap requests per second per label.
 */
export class SlotGatedJobConsumer implements JobConsumer {
  private stopping = false;
  private readonly stopSignal = new AbortController();
  private wakeIdle: (() => void) | undefined;
  private current: ConsumerChannel | undefined;
  private readonly loop: Promise<void>;
  private nextLabel = 0;

  constructor(
    private readonly connection: BusConnection,
    private readonly publisher: ConfirmPublisher,
    private readonly names: TopologyNames,
    private readonly log: Logger,
    private readonly opts: ConsumeJobsOptions,
  ) {
    for (const label of opts.labels) names.labelQueue(label);
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopSignal.abort();
    this.wakeIdle?.();
    await this.loop;
    if (this.current) this.closeWhenSettled(this.current);
  }

  private async run() {
    const pollIntervalMs = this.opts.pollIntervalMs ?? 200;
    while (!this.stopping) {
      let took = false;
      let blockedByCapacity = true;
      try {
        const consumer = await this.channel();
        for (let i = 0; i < this.opts.labels.length && !this.stopping; i++) {
          const label = this.opts.labels[(this.nextLabel + i) % this.opts.labels.length] as string;
          if (!this.opts.slots.tryAcquire(label)) continue;
          blockedByCapacity = false;
          let message: GetMessage | false;
          try {
            message = await consumer.channel.get(this.names.labelQueue(label), { noAck: false });
          } catch (error) {
            this.opts.slots.release(label);
            throw error;
          }
          if (message === false) {
            this.opts.slots.release(label);
            continue;
          }
          took = true;
          await this.dispatch(consumer, label, message);
        }
        // Start the next round at the next label, so one busy label cannot starve the others.
        this.nextLabel = (this.nextLabel + 1) % Math.max(1, this.opts.labels.length);
      } catch (error) {
        if (this.stopping) break;
        this.log.warn({ err: error }, "fetching jobs failed; retrying");
        blockedByCapacity = false;
      }
      if (!took) await this.idle(pollIntervalMs, blockedByCapacity);
    }
  }

  private async dispatch(consumer: ConsumerChannel, label: string, message: GetMessage) {
    const queue = this.names.labelQueue(label);
    let job: JobRequest;
    try {
      job = decodeJobRequest(message.content, message.properties.type);
    } catch (error) {
      if (!(error instanceof UndecodableMessageError)) throw error;
      this.log.warn({ queue, messageId: message.properties.messageId, reason: error.message }, "dead-lettering a job");
      consumer.unsettled++;
      try {
        await this.deadLetter(consumer, message, queue, { code: error.code, message: error.message });
      } catch (deadLetterError) {
        this.log.error({ err: deadLetterError, queue }, "could not dead-letter an undecodable job; it was put back");
      } finally {
        this.opts.slots.release(label);
      }
      return;
    }
    const delivery = new SlotJobDelivery(this, consumer, label, message, queue);
    consumer.unsettled++;
    const log = this.log.child({ job_id: job.jobId, attempt: job.attempt, label });
    this.opts.onJob(job, delivery).catch((error: unknown) => {
      log.error({ err: error }, "handling a job failed; putting it back");
      try {
        this.opts.slots.release(label);
      } catch (releaseError) {
        log.warn({ err: releaseError }, "the handler had released its slot already");
      }
      if (!delivery.settled) {
        delivery.requeue().catch((requeueError: unknown) => {
          // On a lost channel that needs nothing: the broker has put the job back already.
          log.warn({ err: requeueError }, "could not requeue the job");
        });
      }
    });
  }

  /** Republishes to the dead-letter exchange, confirmed, then acks the original. */
  async deadLetter(consumer: ConsumerChannel, message: GetMessage, queue: string, reason: DeadLetterReason) {
    try {
      await republishToDeadLetters(this.publisher, this.names.deadLetterExchange, message, queue, reason);
    } catch (error) {
      // Not dead-lettered: give the job back rather than hold it.
      try {
        this.settle(consumer, message, (channel) => channel.nack(message, false, true));
      } catch {
        // The channel is gone, so the broker has put it back already.
      }
      throw error;
    }
    this.settle(consumer, message, (channel) => channel.ack(message));
  }

  settle(consumer: ConsumerChannel, message: GetMessage, action: (channel: Channel) => void) {
    if (consumer.closed) throw new DeliveryLostError(message.properties.messageId);
    try {
      action(consumer.channel);
    } catch (error) {
      throw new DeliveryLostError(message.properties.messageId, { cause: error });
    }
    consumer.unsettled--;
    if (this.stopping && consumer === this.current) this.closeWhenSettled(consumer);
  }

  private async channel(): Promise<ConsumerChannel> {
    if (this.current && !this.current.closed) return this.current;
    const model = await this.connection.ready(RECONNECT_WAIT_MS, this.stopSignal.signal);
    const channel = await model.createChannel();
    const consumer: ConsumerChannel = { channel, closed: false, unsettled: 0 };
    channel.on("error", (error: unknown) => this.log.warn({ err: error }, "the broker closed the job channel"));
    channel.on("close", () => {
      consumer.closed = true;
    });
    this.current = consumer;
    return consumer;
  }

  private closeWhenSettled(consumer: ConsumerChannel) {
    if (consumer.unsettled > 0 || consumer.closed) return;
    consumer.closed = true;
    void consumer.channel.close().catch((error: unknown) => {
      this.log.debug({ err: error }, "job channel was already closed");
    });
  }

  private idle(ms: number, wakeOnRelease: boolean): Promise<void> {
    return new Promise((resolve) => {
      const unsubscribe = wakeOnRelease ? this.opts.slots.onRelease(() => done()) : undefined;
      const timer = setTimeout(() => done(), ms);
      const done = () => {
        clearTimeout(timer);
        unsubscribe?.();
        this.wakeIdle = undefined;
        resolve();
      };
      this.wakeIdle = done;
    });
  }
}

class SlotJobDelivery implements JobDelivery {
  settled = false;
  readonly messageId: string | undefined;
  readonly redelivered: boolean;

  constructor(
    private readonly consumer: SlotGatedJobConsumer,
    private readonly channel: ConsumerChannel,
    readonly label: string,
    private readonly message: GetMessage,
    private readonly queue: string,
  ) {
    this.messageId = typeof message.properties.messageId === "string" ? message.properties.messageId : undefined;
    this.redelivered = message.fields.redelivered;
  }

  async ack(): Promise<void> {
    this.claim();
    this.consumer.settle(this.channel, this.message, (channel) => channel.ack(this.message));
  }

  async reject(reason: string): Promise<void> {
    this.claim();
    await this.consumer.deadLetter(this.channel, this.message, this.queue, { code: "rejected", message: reason });
  }

  async requeue(): Promise<void> {
    this.claim();
    this.consumer.settle(this.channel, this.message, (channel) => channel.nack(this.message, false, true));
  }

  private claim() {
    if (this.settled) {
      throw new BusError("delivery_settled", `delivery ${this.messageId ?? ""} was already settled`);
    }
    this.settled = true;
  }
}
