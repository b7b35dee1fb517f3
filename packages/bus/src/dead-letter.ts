import { randomUUID } from "node:crypto";
import type { Message, Options } from "amqplib";
import type { ConfirmPublisher } from "./publisher.ts";

export const REASON_HEADER = "x-solstice-reason";
export const REASON_CODE_HEADER = "x-solstice-reason-code";
export const ORIGINAL_QUEUE_HEADER = "x-solstice-original-queue";
export const ORIGINAL_EXCHANGE_HEADER = "x-solstice-original-exchange";
export const ORIGINAL_ROUTING_KEY_HEADER = "x-solstice-original-routing-key";

export interface DeadLetterReason {
  /** Machine-readable: an UndecodableMessageError code, "rejected", ... */
  code: string;
  /** What was wrong, for the operator reading the dead-letter queue. */
  message: string;
}

/** A message in the dead-letter queue, as `listDeadLetters` shows it. */
export interface DeadLetter {
  messageId: string | undefined;
  type: string | undefined;
  /** Our reason, or the broker's (`delivery_limit`, `rejected`, ...) for messages it dead-lettered. */
  reason: string;
  reasonCode: string;
  originalQueue: string | undefined;
  routingKey: string;
  content: Buffer;
}

/**
 * Republishes `message` to the dead-letter exchange with our reason headers and its original
 * properties. A plain nack would only record "rejected"; this keeps the why. Resolves once the
 * broker confirmed the copy; the caller acks the original only then.
 */
export async function republishToDeadLetters(
  publisher: ConfirmPublisher,
  deadLetterExchange: string,
  message: Message,
  originalQueue: string,
  reason: DeadLetterReason,
): Promise<void> {
  const { properties, fields } = message;
  const publishProperties: Options.Publish & { messageId: string } = {
    // A stable id for the copy when the original has none, so a retried publish is recognisable.
    messageId: typeof properties.messageId === "string" ? properties.messageId : `dead-letter-${randomUUID()}`,
    contentType: properties.contentType,
    contentEncoding: properties.contentEncoding,
    priority: properties.priority,
    correlationId: properties.correlationId,
    replyTo: properties.replyTo,
    timestamp: properties.timestamp,
    type: properties.type,
    appId: properties.appId,
    // No `expiration` (a dead letter must not vanish on the original's TTL) and no `userId` (the
    // broker refuses a user id other than the publishing connection's).
    headers: {
      ...properties.headers,
      [REASON_HEADER]: reason.message,
      [REASON_CODE_HEADER]: reason.code,
      [ORIGINAL_QUEUE_HEADER]: originalQueue,
      [ORIGINAL_EXCHANGE_HEADER]: fields.exchange,
      [ORIGINAL_ROUTING_KEY_HEADER]: fields.routingKey,
    },
  };
  await publisher.publish({
    exchange: deadLetterExchange,
    routingKey: fields.routingKey,
    content: message.content,
    properties: publishProperties,
  });
}

export function describeDeadLetter(message: Message): DeadLetter {
  const headers = message.properties.headers ?? {};
  const ourReason = stringHeader(headers[REASON_HEADER]);
  const brokerReason = stringHeader(headers["x-first-death-reason"]);
  const brokerQueue = stringHeader(headers["x-first-death-queue"]);
  return {
    messageId: stringHeader(message.properties.messageId),
    type: stringHeader(message.properties.type),
    reason: ourReason ?? (brokerReason ? `dead-lettered by the broker: ${brokerReason}` : "unknown"),
    reasonCode: stringHeader(headers[REASON_CODE_HEADER]) ?? brokerReason ?? "unknown",
    originalQueue: stringHeader(headers[ORIGINAL_QUEUE_HEADER]) ?? brokerQueue,
    routingKey: message.fields.routingKey,
    content: message.content,
  };
}

function stringHeader(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  return undefined;
}
