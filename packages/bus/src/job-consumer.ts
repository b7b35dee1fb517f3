import { decodeJobRequest, type JobRequest, UndecodableMessageError } from "@solstice/protocol";
import type { Channel, Message } from "amqplib";
import type { Logger } from "pino";
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
   * Stops taking jobs; deliveries already handed out stay settleable. Resolves once no fetch or
   * subscription is in progress (a job delivered just before still reaches onJob).
   */
  stop(): Promise<void>;
}

/**
 * How a host takes jobs (docs/decisions/0002 and 0006):
 * - `reserve`: one consumer per label with prefetch 1, armed only while a slot of that label is
 *   reserved for its next delivery. Nothing is polled. Needs a gate where one label's reservation
 *   never keeps another label from reserving (per-label bounds that fit in the total, no warm
 *   pool), or a label could wait idle while other labels hold the slots.
 * - `poll`: `basic.get`, one per free slot, asking empty queues again every `pollIntervalMs`.
 *   Works with any gate.
 */
export type JobTaking = "reserve" | "poll";

export interface ConsumeJobsOptions {
  labels: readonly string[];
  slots: SlotGate;
  /**
   * Called with each job, its slot already taken. Resolve once the job is accepted (not when it
   * ends). If it throws, the consumer requeues an unsettled delivery and releases the slot.
   */
  onJob(job: JobRequest, delivery: JobDelivery): Promise<void>;
  /** Default `poll`, which is right for any gate. */
  taking?: JobTaking;
  /** `poll` only: how often empty label queues are asked again while idle. Default 200. */
  pollIntervalMs?: number;
}

/** A channel jobs are taken on, with the deliveries on it not yet settled. */
export interface ConsumerChannel {
  channel: Channel;
  closed: boolean;
  unsettled: number;
}

/**
 * Turns a delivery that already holds its slot into `onJob`, and settles it: the part both ways of
 * taking jobs share. Undecodable jobs are dead-lettered; a handler that fails gives the slot back
 * and requeues the job.
 */
export class JobDispatcher {
  constructor(
    private readonly publisher: ConfirmPublisher,
    private readonly names: TopologyNames,
    private readonly log: Logger,
    private readonly opts: Pick<ConsumeJobsOptions, "slots" | "onJob">,
    /** Called after every settlement, so a consumer can close a channel it no longer uses. */
    private readonly onSettled: (consumer: ConsumerChannel) => void,
  ) {}

  async dispatch(consumer: ConsumerChannel, label: string, message: Message): Promise<void> {
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
  async deadLetter(consumer: ConsumerChannel, message: Message, queue: string, reason: DeadLetterReason) {
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

  settle(consumer: ConsumerChannel, message: Message, action: (channel: Channel) => void) {
    if (consumer.closed) throw new DeliveryLostError(message.properties.messageId);
    try {
      action(consumer.channel);
    } catch (error) {
      throw new DeliveryLostError(message.properties.messageId, { cause: error });
    }
    consumer.unsettled--;
    this.onSettled(consumer);
  }
}

/** Closes a job channel once nothing taken on it awaits settlement (or at once if nothing does). */
export function closeWhenSettled(consumer: ConsumerChannel, log: Logger) {
  if (consumer.unsettled > 0 || consumer.closed) return;
  consumer.closed = true;
  void consumer.channel.close().catch((error: unknown) => {
    log.debug({ err: error }, "job channel was already closed");
  });
}

class SlotJobDelivery implements JobDelivery {
  settled = false;
  readonly messageId: string | undefined;
  readonly redelivered: boolean;

  constructor(
    private readonly dispatcher: JobDispatcher,
    private readonly channel: ConsumerChannel,
    readonly label: string,
    private readonly message: Message,
    private readonly queue: string,
  ) {
    this.messageId = typeof message.properties.messageId === "string" ? message.properties.messageId : undefined;
    this.redelivered = message.fields.redelivered;
  }

  async ack(): Promise<void> {
    this.claim();
    this.dispatcher.settle(this.channel, this.message, (channel) => channel.ack(this.message));
  }

  async reject(reason: string): Promise<void> {
    this.claim();
    await this.dispatcher.deadLetter(this.channel, this.message, this.queue, { code: "rejected", message: reason });
  }

  async requeue(): Promise<void> {
    this.claim();
    this.dispatcher.settle(this.channel, this.message, (channel) => channel.nack(this.message, false, true));
  }

  private claim() {
    if (this.settled) {
      throw new BusError("delivery_settled", `delivery ${this.messageId ?? ""} was already settled`);
    }
    this.settled = true;
  }
}
