import type { ChannelModel, GetMessage } from "amqplib";
import {
  describeDeadLetter,
  ORIGINAL_EXCHANGE_HEADER,
  ORIGINAL_ROUTING_KEY_HEADER,
  REASON_CODE_HEADER,
  REASON_HEADER,
} from "./dead-letter.ts";
import { withOwnChannel } from "./own-channel.ts";
import type { ConfirmPublisher } from "./publisher.ts";
import type { TopologyNames } from "./topology.ts";

/** Which dead letters to replay: by message id, or all of them. */
export type ReplaySelection = { readonly messageIds: readonly string[] } | { readonly all: true };

export interface ReplayResult {
  /** Message ids put back on their original exchange, in queue order. */
  readonly replayed: string[];
  /** Requested ids that are not in the dead-letter queue. */
  readonly notFound: string[];
}

/**
 * Puts dead letters back where they came from (their original exchange and routing key), each
 * confirmed by the broker before its dead-letter copy is acked, so a crash in between duplicates a
 * message rather than losing it. Letters not selected stay in the queue. At most `limit` letters are
 * looked at, so one call cannot take the whole queue into memory.
 */
export async function replayDeadLetters(
  model: ChannelModel,
  publisher: ConfirmPublisher,
  names: TopologyNames,
  selection: ReplaySelection,
  limit: number,
): Promise<ReplayResult> {
  const wanted = "all" in selection ? undefined : new Set(selection.messageIds);
  return withOwnChannel(model, async (channel) => {
    const replayed: string[] = [];
    const kept: GetMessage[] = [];
    for (let seen = 0; seen < limit; seen++) {
      const message = await channel.get(names.deadLetterQueue, { noAck: false });
      if (message === false) break;
      const letter = describeDeadLetter(message);
      const id = letter.messageId ?? "";
      if (wanted && !wanted.has(id)) {
        kept.push(message);
        continue;
      }
      const headers = { ...message.properties.headers };
      const exchange = stringOf(headers[ORIGINAL_EXCHANGE_HEADER]) ?? stringOf(headers["x-first-death-exchange"]);
      for (const header of [REASON_HEADER, REASON_CODE_HEADER, ORIGINAL_EXCHANGE_HEADER, ORIGINAL_ROUTING_KEY_HEADER])
        delete headers[header];
      await publisher.publish({
        exchange: exchange ?? names.jobsExchange,
        routingKey: stringOf(message.properties.headers?.[ORIGINAL_ROUTING_KEY_HEADER]) ?? letter.routingKey,
        content: message.content,
        properties: { ...message.properties, headers, messageId: id || `replayed-${Date.now()}-${seen}` },
      });
      channel.ack(message);
      replayed.push(id);
      wanted?.delete(id);
      if (wanted?.size === 0) break;
    }
    for (const message of kept) channel.nack(message, false, true);
    return { replayed, notFound: wanted ? [...wanted] : [] };
  });
}

/** Empties the dead-letter queue; resolves with how many letters were dropped. */
export async function purgeDeadLetters(model: ChannelModel, names: TopologyNames): Promise<number> {
  return withOwnChannel(model, async (channel) => (await channel.purgeQueue(names.deadLetterQueue)).messageCount);
}

/**
 * Ready messages per label queue, from a passive declare; `undefined` for a label whose queue does
 * not exist (no host ever served it).
 */
export async function labelQueueDepths(
  model: ChannelModel,
  names: TopologyNames,
  labels: readonly string[],
): Promise<Map<string, number | undefined>> {
  const depths = new Map<string, number | undefined>();
  for (const label of labels) {
    // A passive declare of a missing queue closes its channel: one channel per label.
    depths.set(
      label,
      await withOwnChannel(model, (channel) => channel.checkQueue(names.labelQueue(label))).then(
        (ok) => ok.messageCount,
        (error: unknown) => {
          if ((error as { code?: unknown }).code === 404) return undefined;
          throw error;
        },
      ),
    );
  }
  return depths;
}

function stringOf(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  return undefined;
}
