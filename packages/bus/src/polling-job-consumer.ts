import type { GetMessage } from "amqplib";
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

// How long one wait for a reconnect lasts before the consumer logs and waits again.
const RECONNECT_WAIT_MS = 60_000;

/**
 * Takes jobs with basic.get, one per free slot, so this host never holds a delivery it cannot
 * start now: a held message is invisible to every other host. It works with any slot gate (a
 * total shared by labels, a warm pool), at the price of polling idle queues every
 * `pollIntervalMs`: a few requests per second per label per host, which a large idle fleet pays
 * on the broker (docs/decisions/0006); `reserve` avoids that where the gate allows it.
 */
export class PollingJobConsumer implements JobConsumer {
  private stopping = false;
  private readonly stopSignal = new AbortController();
  private wakeIdle: (() => void) | undefined;
  private current: ConsumerChannel | undefined;
  private readonly loop: Promise<void>;
  private nextLabel = 0;
  private readonly dispatcher: JobDispatcher;

  constructor(
    private readonly connection: BusConnection,
    publisher: ConfirmPublisher,
    private readonly names: TopologyNames,
    private readonly log: Logger,
    private readonly opts: ConsumeJobsOptions,
  ) {
    for (const label of opts.labels) names.labelQueue(label);
    this.dispatcher = new JobDispatcher(publisher, names, log, opts, (consumer) => {
      if (this.stopping && consumer === this.current) closeWhenSettled(consumer, log);
    });
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopSignal.abort();
    this.wakeIdle?.();
    await this.loop;
    if (this.current) closeWhenSettled(this.current, this.log);
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
          await this.dispatcher.dispatch(consumer, label, message);
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
