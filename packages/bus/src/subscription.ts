import { UndecodableMessageError } from "@solstice/protocol";
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import type { Logger } from "pino";
import type { BusConnection } from "./connection.ts";
import { republishToDeadLetters } from "./dead-letter.ts";
import type { ConfirmPublisher } from "./publisher.ts";
import type { TopologyNames } from "./topology.ts";

export interface Subscription {
  /** Stops the consumer after the message being handled; no handler runs after it resolves. */
  stop(): Promise<void>;
}

export interface SubscriptionSpec<T> {
  /** For logs: "events of owner runner-1", "control". */
  name: string;
  /** Parses the body; throws UndecodableMessageError for anything unusable. */
  decode(content: Uint8Array, type: string | undefined): T;
  /** Messages handed to this consumer ahead of the one being handled; bounds its memory. */
  prefetch: number;
  /**
   * Declares (or re-declares after a reconnect) the queue, on `channel` or channels of its own from
   * `model`, and returns its name and how many consumers it has already.
   */
  declareQueue(channel: Channel, model: ChannelModel): Promise<{ queue: string; consumerCount: number }>;
  /** Set for a queue that must have one consumer only: the error to refuse a second with. */
  soleConsumer?: (queue: string) => Error;
  handle(message: T): Promise<void>;
  /**
   * What happens when `handle` throws: "requeue" (for a durable queue with a delivery limit, so
   * the broker dead-letters a message that keeps failing) or "drop" (temporary queues).
   */
  onHandlerError: "requeue" | "drop";
}

interface Attached {
  channel: Channel;
  consumerTag: string;
}

/** Handled messages of one channel not acked yet: the last one acks them all (`multiple`). */
interface AckBatch {
  channel: Channel;
  last: ConsumeMessage | undefined;
  count: number;
  /** Flushes the batch `ACK_DELAY_MS` after its first message was handled. */
  timer: NodeJS.Timeout | undefined;
}

/**
 * A push consumer that hands messages to `handle` one at a time, in queue order, acking each after
 * it returns. Undecodable messages go to the dead-letter queue with the reason. It re-attaches after
 * every reconnect (a temporary queue is then a new one; what was published meanwhile is lost to it).
 *
 * Acks are batched: handled messages are acked together (one ack with `multiple`) at most
 * `ACK_DELAY_MS` after the first of them, once half the prefetch window is handled, before any
 * other settlement, and at stop. On a quorum queue each ack is a command that every node of the
 * cluster applies and writes to its log, and one applied alone cost the three nodes of
 * bench:fleet's cluster ~3 ms of CPU against ~0.03 ms an ack in a batch (docs/operations.md,
 * "Where the time goes"); an owner gets at least two events a job. Nothing is acked before its
 * handler returned, so a lost connection redelivers only what was not acked yet, as before (at
 * least once: owners drop what they had by number), now up to `ACK_DELAY_MS` of it.
 */
export class OrderedSubscription<T> implements Subscription {
  private attached: Attached | undefined;
  private handling: Promise<void> = Promise.resolve();
  private acks: AckBatch | undefined;
  private stopped = false;
  private readonly removeHook: () => void;

  private constructor(
    connection: BusConnection,
    private readonly publisher: ConfirmPublisher,
    private readonly names: TopologyNames,
    private readonly log: Logger,
    private readonly spec: SubscriptionSpec<T>,
  ) {
    this.removeHook = connection.onReconnect(async (model) => {
      void this.reattach(connection, model);
    });
  }

  static async start<T>(
    connection: BusConnection,
    publisher: ConfirmPublisher,
    names: TopologyNames,
    log: Logger,
    spec: SubscriptionSpec<T>,
    timeoutMs: number,
  ): Promise<OrderedSubscription<T>> {
    const subscription = new OrderedSubscription(connection, publisher, names, log, spec);
    try {
      await subscription.attach(await connection.ready(timeoutMs));
    } catch (error) {
      await subscription.stop();
      throw error;
    }
    return subscription;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.removeHook();
    const attached = this.attached;
    this.attached = undefined;
    if (attached) {
      // Bounded: a broker that does not answer must not hold a stopping process.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        attached.channel.cancel(attached.consumerTag).catch(() => {
          // The channel is gone; so is the consumer.
        }),
        new Promise((resolve) => {
          timer = setTimeout(resolve, CANCEL_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    await this.handling;
    this.flushAcks();
    await attached?.channel.close().catch(() => {
      // Already closed.
    });
  }

  /**
   * Re-attaches after a reconnect until it works, this subscription stops or the connection is
   * lost again (the next reconnect starts over). A broker that has just restarted can refuse a
   * declaration for a moment, and a consumer of the lost connection can linger until the broker
   * notices it gone; giving up after one try would leave the subscription deaf for good.
   */
  private async reattach(connection: BusConnection, model: ChannelModel) {
    for (let attempt = 0; !this.stopped && connection.current === model; attempt++) {
      try {
        await this.attach(model);
        if (attempt > 0) this.log.info({ consumer: this.spec.name, attempts: attempt + 1 }, "consumer re-attached");
        return;
      } catch (error) {
        if (this.stopped || connection.current !== model) return;
        const delayMs = Math.min(REATTACH_MAX_DELAY_MS, REATTACH_FIRST_DELAY_MS * 2 ** attempt);
        this.log.warn(
          { err: error, consumer: this.spec.name, retry_in_ms: delayMs },
          "could not re-attach the consumer after a reconnect; retrying",
        );
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  private async attach(model: ChannelModel) {
    if (this.stopped) return;
    const channel = await model.createChannel();
    channel.on("error", (error: unknown) => this.log.warn({ err: error, consumer: this.spec.name }, "channel closed"));
    try {
      await this.consumeOn(channel, model);
    } catch (error) {
      await channel.close().catch(() => {
        // Closed by the broker's refusal already.
      });
      throw error;
    }
  }

  private async consumeOn(channel: Channel, model: ChannelModel) {
    await channel.prefetch(this.spec.prefetch);
    const { queue, consumerCount } = await this.spec.declareQueue(channel, model);
    if (this.spec.soleConsumer && consumerCount > 0) throw this.spec.soleConsumer(queue);
    // A new channel's deliveries start their own batch (the old channel's unacked went back with it).
    this.flushAcks();
    this.acks = { channel, last: undefined, count: 0, timer: undefined };
    const { consumerTag } = await channel.consume(queue, (message) => {
      if (message === null) {
        this.log.warn({ consumer: this.spec.name, queue }, "the broker cancelled the consumer (queue deleted?)");
        return;
      }
      this.handling = this.handling
        .then(() => this.deliver(channel, queue, message))
        .catch((error: unknown) => this.log.error({ err: error, consumer: this.spec.name }, "delivering failed"));
    });
    this.attached = { channel, consumerTag };
  }

  /** Acks every handled message not acked yet, with one `multiple` ack. */
  private flushAcks() {
    const acks = this.acks;
    const last = acks?.last;
    if (!acks || !last) return;
    clearTimeout(acks.timer);
    acks.timer = undefined;
    acks.last = undefined;
    acks.count = 0;
    settle(() => acks.channel.ack(last, true));
  }

  private async deliver(channel: Channel, queue: string, message: ConsumeMessage) {
    // Any settlement but a plain ack goes out after the acks of the messages before it.
    let decoded: T;
    try {
      decoded = this.spec.decode(message.content, message.properties.type);
    } catch (error) {
      if (!(error instanceof UndecodableMessageError)) throw error;
      this.flushAcks();
      await this.deadLetter(channel, queue, message, error);
      return;
    }
    try {
      await this.spec.handle(decoded);
    } catch (error) {
      this.log.error({ err: error, consumer: this.spec.name }, "handler failed");
      this.flushAcks();
      settle(() => channel.nack(message, false, this.spec.onHandlerError === "requeue"));
      return;
    }
    const acks = this.acks;
    if (acks?.channel !== channel) {
      // Handled after its channel was replaced: acking there is no use (the broker put it back).
      return;
    }
    acks.last = message;
    acks.count++;
    // Half the window handled: ack now, so the broker can keep it full.
    if (acks.count >= Math.max(1, this.spec.prefetch / 2)) this.flushAcks();
    else acks.timer ??= setTimeout(() => this.flushAcks(), ACK_DELAY_MS).unref();
  }

  private async deadLetter(channel: Channel, queue: string, message: ConsumeMessage, error: UndecodableMessageError) {
    this.log.warn({ consumer: this.spec.name, queue, reason: error.message }, "dead-lettering a message");
    try {
      await republishToDeadLetters(this.publisher, this.names.deadLetterExchange, message, queue, {
        code: error.code,
        message: error.message,
      });
    } catch (publishError) {
      this.log.error({ err: publishError, consumer: this.spec.name }, "could not dead-letter; putting it back");
      settle(() => channel.nack(message, false, true));
      return;
    }
    settle(() => channel.ack(message));
  }
}

/** How long a handled message may wait for others to be acked with it. */
const ACK_DELAY_MS = 50;
const REATTACH_FIRST_DELAY_MS = 250;
const CANCEL_TIMEOUT_MS = 3_000;
const REATTACH_MAX_DELAY_MS = 5_000;

// A settle on a channel that is already gone needs nothing: the broker has put the message back.
function settle(action: () => void) {
  try {
    action();
  } catch {
    // See above.
  }
}
