import type { Channel, ChannelModel } from "amqplib";

/**
 * Runs one operation on a channel of its own, closed afterwards. The broker answers a refused
 * operation (a declaration that does not match, a queue that is not there) by closing the channel
 * it came on, so such operations never share the long-lived channels of consumers and publishers.
 */
export async function withOwnChannel<T>(model: ChannelModel, body: (channel: Channel) => Promise<T>): Promise<T> {
  const channel = await model.createChannel();
  channel.on("error", () => {
    // The failing operation's promise carries the same error to the caller; this listener only
    // keeps an unhandled 'error' event from crashing the process.
  });
  try {
    return await body(channel);
  } finally {
    await channel.close().catch(() => {
      // Closed by the broker already, with the refusal the caller is being told about.
    });
  }
}
