import type { ChannelModel, ConfirmChannel, Options } from "amqplib";
import type { Logger } from "pino";
import type { BusConnection } from "./connection.ts";
import { BusError, BusUnavailableError } from "./errors.ts";

export interface PublishRequest {
  exchange: string;
  routingKey: string;
  content: Buffer;
  properties: Options.Publish & { messageId: string };
  /** Have the broker return the message when no queue is bound; `onReturned` builds the error. */
  onReturned?: () => Promise<BusError>;
}

interface PendingReturn {
  returned: boolean;
}

interface PublishChannel {
  model: ChannelModel;
  channel: ConfirmChannel;
  /** Set when the broker closed the channel because of something we sent (e.g. unknown exchange). */
  brokerError: Error | undefined;
  /** Publishes waiting for their confirm, by messageId, oldest first. */
  pendingReturns: Map<string, PendingReturn[]>;
}

/**
 * Persistent, confirmed publishing on one confirm channel. A publish resolves when the broker has
 * taken responsibility for the message; until the deadline it survives a lost connection by
 * publishing again on the new one (at-least-once: consumers dedupe by messageId).
 */
export class ConfirmPublisher {
  private current: PublishChannel | undefined;
  private opening: Promise<PublishChannel> | undefined;
  private inFlight = 0;

  constructor(
    private readonly connection: BusConnection,
    private readonly log: Logger,
    private readonly publishTimeoutMs: number,
    private readonly maxInFlight: number,
  ) {}

  async publish(request: PublishRequest): Promise<void> {
    if (this.inFlight >= this.maxInFlight) {
      throw new BusUnavailableError(`${this.inFlight} publishes are already waiting for the broker`, {
        hint: "the broker is slow or unreachable; retry later",
      });
    }
    this.inFlight++;
    try {
      await this.publishUntilDeadline(request, Date.now() + this.publishTimeoutMs);
    } finally {
      this.inFlight--;
    }
  }

  private async publishUntilDeadline(request: PublishRequest, deadline: number) {
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new BusUnavailableError(
          `could not publish ${request.properties.messageId} to ${request.exchange} within ${this.publishTimeoutMs} ms`,
          { hint: `check that RabbitMQ runs at ${this.connection.brokerAddress}` },
        );
      }
      const model = await this.connection.ready(remaining);
      let target: PublishChannel;
      try {
        target = await this.channelOn(model);
      } catch (error) {
        // Failing on a connection that has since been replaced is a reason to try the new one.
        if (this.connection.current === model) throw BusError.from(error);
        continue;
      }
      const outcome = await this.publishOnce(target, request);
      if (outcome === "sent") return;
      if (outcome !== "connection_lost") throw outcome;
      this.log.debug(
        { messageId: request.properties.messageId },
        "connection lost before the confirm; publishing again",
      );
    }
  }

  private publishOnce(target: PublishChannel, request: PublishRequest): Promise<"sent" | "connection_lost" | BusError> {
    const { messageId } = request.properties;
    const pending: PendingReturn = { returned: false };
    const queue = target.pendingReturns.get(messageId) ?? [];
    queue.push(pending);
    target.pendingReturns.set(messageId, queue);
    return new Promise((resolve) => {
      const settle = (error: unknown) => {
        const waiting = target.pendingReturns.get(messageId);
        const index = waiting?.indexOf(pending) ?? -1;
        if (waiting && index >= 0) waiting.splice(index, 1);
        if (waiting?.length === 0) target.pendingReturns.delete(messageId);
        if (error) {
          resolve(this.classifyFailure(target, error));
        } else if (pending.returned && request.onReturned) {
          request.onReturned().then(resolve, (buildError: unknown) => resolve(BusError.from(buildError)));
        } else {
          resolve("sent");
        }
      };
      try {
        target.channel.publish(
          request.exchange,
          request.routingKey,
          request.content,
          { ...request.properties, persistent: true, mandatory: request.onReturned !== undefined },
          settle,
        );
      } catch (error) {
        settle(error);
      }
    });
  }

  private classifyFailure(target: PublishChannel, error: unknown): "connection_lost" | BusError {
    if (target.brokerError) {
      return new BusError("publish_refused", `the broker refused the message: ${target.brokerError.message}`, {
        hint: "declare the topology first (bus.declareTopology())",
        cause: target.brokerError,
      });
    }
    if (error instanceof Error && error.message === "message nacked") {
      return new BusError("publish_refused", "the broker refused the message (its queue is full or unavailable)", {
        hint: "the queue reached its length limit; wait until hosts take jobs, or raise the limit",
        cause: error,
      });
    }
    return "connection_lost";
  }

  private async channelOn(model: ChannelModel): Promise<PublishChannel> {
    if (this.current?.model === model) return this.current;
    if (!this.opening) {
      this.opening = this.openChannel(model).finally(() => {
        this.opening = undefined;
      });
    }
    const opened = await this.opening;
    if (opened.model !== model) return this.channelOn(model);
    return opened;
  }

  private async openChannel(model: ChannelModel): Promise<PublishChannel> {
    const channel = await model.createConfirmChannel();
    const target: PublishChannel = { model, channel, brokerError: undefined, pendingReturns: new Map() };
    channel.on("error", (error: Error) => {
      target.brokerError = error;
      this.log.warn({ err: error }, "the broker closed the publish channel");
    });
    // A return always reaches us before the confirm of the same message on the same channel, so
    // marking the oldest unconfirmed publish with that messageId matches them reliably.
    channel.on("return", (message: { properties: { messageId?: unknown } }) => {
      const waiting = target.pendingReturns.get(String(message.properties.messageId));
      const first = waiting?.find((candidate) => !candidate.returned);
      if (first) first.returned = true;
    });
    channel.on("close", () => {
      if (this.current === target) this.current = undefined;
    });
    this.current = target;
    return target;
  }
}
