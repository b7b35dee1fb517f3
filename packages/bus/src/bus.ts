import { randomUUID } from "node:crypto";
import {
  type Control,
  ControlSchema,
  decodeMessage,
  encodeMessage,
  type JobEvent,
  JobEventSchema,
  type JobRequest,
  JobRequestSchema,
} from "@solstice/protocol";
import type { ChannelModel, GetMessage } from "amqplib";
import type { Logger } from "pino";
import {
  BusConnection,
  type ConnectFn,
  type ConnectionState,
  defaultConnect,
  type ReconnectOptions,
} from "./connection.ts";
import { type DeadLetter, describeDeadLetter } from "./dead-letter.ts";
import {
  labelQueueDepths,
  purgeDeadLetters,
  type ReplayResult,
  type ReplaySelection,
  replayDeadLetters,
} from "./dead-letter-admin.ts";
import { BusError, OwnerTakenError, UnroutableLabelError } from "./errors.ts";
import type { ConsumeJobsOptions, JobConsumer } from "./job-consumer.ts";
import { PollingJobConsumer } from "./polling-job-consumer.ts";
import { ConfirmPublisher } from "./publisher.ts";
import { ReservingJobConsumer } from "./reserving-job-consumer.ts";
import { OrderedSubscription, type Subscription } from "./subscription.ts";
import {
  checkJobId,
  checkName,
  checkOwner,
  declareCoreTopology,
  declareLabelQueue,
  declareOwnerQueue,
  deleteEntities,
  type QueueLimits,
  type TopologyNames,
  topologyNames,
} from "./topology.ts";

export interface BusOptions {
  /** AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672. Its password never reaches a log or error. */
  url: string;
  /** Prefix of every exchange and queue. Default "solstice". */
  namespace?: string;
  log: Logger;
  /** Deliveries of a job before the broker dead-letters it. Default 5. */
  deliveryLimit?: number;
  /** Backoff after a lost connection. Default { initialDelayMs: 200, maxDelayMs: 10000 }. */
  reconnect?: ReconnectOptions;
  /** How long connectBus retries the first connection. Default 30000. */
  connectTimeoutMs?: number;
  /** How long a publish waits for the broker (a reconnect included) before BusUnavailableError. Default 15000. */
  publishTimeoutMs?: number;
  /** Publishes allowed to wait for the broker at once; more fail at once. Default 10000. */
  maxPendingPublishes?: number;
  /** Ready jobs per label queue; publishes beyond it are refused. Default 10000. */
  maxQueuedJobs?: number;
  /** Unconsumed events per owner queue; publishes beyond it are refused. Default 100000. */
  maxQueuedEvents?: number;
  /** Dead letters kept; the oldest are dropped beyond it. Default 100000. */
  maxDeadLetters?: number;
  /**
   * How long an owner queue outlives its last consumer before the broker deletes it. Long enough
   * for an owner to restart without losing events; the queue of one that ended goes. Default 3600000.
   */
  ownerQueueExpiryMs?: number;
  /** Labels served by live hosts, named in UnroutableLabelError's hint (e.g. from the hosts table). */
  servedLabels?: () => Promise<readonly string[]> | readonly string[];
  /** Told when the connection is lost and when it is back (after topology and consumers are restored). */
  onStateChange?: (state: ConnectionState) => void;
  /** Connection name shown on the broker. Default "solstice". */
  clientName?: string;
  /** Opens the AMQP connection; a seam for tests. Default amqplib's connect. */
  connect?: ConnectFn;
}

export interface ConsumeEventsOptions {
  /** Owner mode: this runner's durable queue, bound to `<owner>.#`. */
  owner?: string;
  /** Follower mode: a temporary queue bound to `*.<jobId>`, gone when the follower stops. */
  jobId?: string;
  onEvent(event: JobEvent): Promise<void>;
  /** Events handed over ahead of the one being handled. Default 64. */
  prefetch?: number;
}

export interface Bus {
  readonly names: TopologyNames;
  /** Whether the connection is up right now. */
  readonly connected: boolean;
  /** Declares the exchanges and the dead-letter queue. Idempotent; re-done after a reconnect. */
  declareTopology(): Promise<void>;
  /** Declares the quorum queue of `label`. Idempotent; re-done after a reconnect. */
  ensureLabelQueue(label: string): Promise<void>;
  /** Publishes a job to its `runsOn` label; UnroutableLabelError when no queue is bound for it. */
  publishJob(job: JobRequest): Promise<void>;
  publishEvent(event: JobEvent, owner: string): Promise<void>;
  publishControl(control: Control): Promise<void>;
  /** Takes jobs of `labels` as the slots allow (declaring the topology and label queues first). */
  consumeJobs(opts: ConsumeJobsOptions): Promise<JobConsumer>;
  /** Follows an owner's events (durable queue) or one job's (temporary queue), in order. */
  consumeEvents(opts: ConsumeEventsOptions): Promise<Subscription>;
  /** Hears every Control broadcast from now on (temporary queue). */
  consumeControl(onControl: (control: Control) => Promise<void>): Promise<Subscription>;
  /** Up to `limit` dead letters, oldest first, left in the queue. */
  listDeadLetters(limit: number): Promise<DeadLetter[]>;
  /** Republishes the selected dead letters (looking at up to `limit`) to where they came from. */
  replayDeadLetters(selection: ReplaySelection, limit: number): Promise<ReplayResult>;
  /** Empties the dead-letter queue; resolves with how many were dropped. */
  purgeDeadLetters(): Promise<number>;
  /** Ready jobs per label queue; undefined for a label that has no queue. */
  queueDepths(labels: readonly string[]): Promise<Map<string, number | undefined>>;
  /** Letters waiting in the dead-letter queue (a passive declare: nothing is moved). */
  deadLetterDepth(): Promise<number>;
  /** Deletes every queue and exchange of this namespace that this Bus declared or knows of. */
  deleteNamespace(): Promise<void>;
  /** Stops every consumer and closes the connection; unsettled deliveries go back to their queues. */
  close(): Promise<void>;
}

const JOB_REQUEST_TYPE = JobRequestSchema.typeName;
const JOB_EVENT_TYPE = JobEventSchema.typeName;
const CONTROL_TYPE = ControlSchema.typeName;
const PROTOBUF_CONTENT_TYPE = "application/x-protobuf";

export async function connectBus(opts: BusOptions): Promise<Bus> {
  const names = topologyNames(opts.namespace ?? "solstice");
  const log = opts.log.child({ component: "bus", namespace: names.namespace });
  const connection = await BusConnection.open(
    {
      url: opts.url,
      log,
      reconnect: opts.reconnect ?? { initialDelayMs: 200, maxDelayMs: 10_000 },
      connect: opts.connect ?? defaultConnect,
      clientName: opts.clientName ?? "solstice",
      onStateChange: opts.onStateChange,
    },
    opts.connectTimeoutMs ?? 30_000,
  );
  return new AmqpBus(connection, names, log, opts);
}

class AmqpBus implements Bus {
  private readonly publisher: ConfirmPublisher;
  private readonly limits: QueueLimits;
  private readonly publishTimeoutMs: number;
  private topologyDeclared = false;
  private readonly labels = new Set<string>();
  private readonly owners = new Set<string>();
  private readonly consumers = new Set<JobConsumer | Subscription>();
  /** Declarations, the re-declaration after a reconnect and deletion run one at a time, in order. */
  private topologyQueue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly connection: BusConnection,
    readonly names: TopologyNames,
    private readonly log: Logger,
    private readonly opts: BusOptions,
  ) {
    this.publishTimeoutMs = opts.publishTimeoutMs ?? 15_000;
    this.publisher = new ConfirmPublisher(connection, log, this.publishTimeoutMs, opts.maxPendingPublishes ?? 10_000);
    this.limits = {
      deliveryLimit: opts.deliveryLimit ?? 5,
      maxQueuedJobs: opts.maxQueuedJobs ?? 10_000,
      maxQueuedEvents: opts.maxQueuedEvents ?? 100_000,
      maxDeadLetters: opts.maxDeadLetters ?? 100_000,
      ownerQueueExpiryMs: opts.ownerQueueExpiryMs ?? 3_600_000,
    };
    // Registered first, so the topology is back before any consumer re-attaches.
    connection.onReconnect((model) => this.redeclare(model));
  }

  get connected(): boolean {
    return this.connection.connected;
  }

  declareTopology(): Promise<void> {
    return this.serially(async () => {
      await declareCoreTopology(await this.ready(), this.names, this.limits);
      this.topologyDeclared = true;
    });
  }

  ensureLabelQueue(label: string): Promise<void> {
    return this.serially(async () => {
      await declareLabelQueue(await this.ready(), this.names, label, this.limits);
      this.labels.add(label);
    });
  }

  async publishJob(job: JobRequest): Promise<void> {
    const label = checkName("label", job.runsOn);
    await this.publisher.publish({
      exchange: this.names.jobsExchange,
      routingKey: label,
      content: Buffer.from(encodeMessage(JobRequestSchema, job)),
      properties: this.properties(JOB_REQUEST_TYPE, `${job.jobId}/${job.attempt}`),
      onReturned: async () => new UnroutableLabelError(label, await this.servedLabels()),
    });
  }

  async publishEvent(event: JobEvent, owner: string): Promise<void> {
    await this.publisher.publish({
      exchange: this.names.eventsExchange,
      routingKey: `${checkOwner(owner)}.${event.jobId}`,
      content: Buffer.from(encodeMessage(JobEventSchema, event)),
      properties: this.properties(JOB_EVENT_TYPE, `${event.jobId}/${event.attempt}/${event.seq}`),
    });
  }

  async publishControl(control: Control): Promise<void> {
    await this.publisher.publish({
      exchange: this.names.controlExchange,
      routingKey: "",
      content: Buffer.from(encodeMessage(ControlSchema, control)),
      properties: this.properties(CONTROL_TYPE, randomUUID()),
    });
  }

  async consumeJobs(opts: ConsumeJobsOptions): Promise<JobConsumer> {
    await this.ensureTopology();
    for (const label of opts.labels) await this.ensureLabelQueue(label);
    const consumer =
      opts.taking === "reserve"
        ? new ReservingJobConsumer(this.connection, this.publisher, this.names, this.log, opts)
        : new PollingJobConsumer(this.connection, this.publisher, this.names, this.log, opts);
    return this.track(consumer);
  }

  async consumeEvents(opts: ConsumeEventsOptions): Promise<Subscription> {
    if ((opts.owner === undefined) === (opts.jobId === undefined)) {
      throw new BusError("invalid_name", "consumeEvents needs exactly one of owner or jobId");
    }
    const { owner, jobId } = opts;
    if (owner !== undefined) {
      checkOwner(owner);
      this.owners.add(owner);
    }
    if (jobId !== undefined) checkJobId(jobId);
    await this.ensureTopology();
    const subscription = await OrderedSubscription.start(
      this.connection,
      this.publisher,
      this.names,
      this.log,
      {
        name: owner !== undefined ? `events of owner ${owner}` : `events of job ${jobId}`,
        decode: (content, type) => decodeMessage(JobEventSchema, content, type),
        prefetch: opts.prefetch ?? 64,
        handle: opts.onEvent,
        onHandlerError: owner !== undefined ? "requeue" : "drop",
        declareQueue: async (channel, model) => {
          if (owner !== undefined) return declareOwnerQueue(model, this.names, owner, this.limits, this.log);
          const declared = await channel.assertQueue("", { exclusive: true, autoDelete: true, durable: false });
          await channel.bindQueue(declared.queue, this.names.eventsExchange, `*.${jobId}`);
          return declared;
        },
        ...(owner !== undefined ? { soleConsumer: (queue: string) => new OwnerTakenError(owner, queue) } : {}),
      },
      this.publishTimeoutMs,
    );
    return this.track(subscription);
  }

  async consumeControl(onControl: (control: Control) => Promise<void>): Promise<Subscription> {
    await this.ensureTopology();
    const subscription = await OrderedSubscription.start(
      this.connection,
      this.publisher,
      this.names,
      this.log,
      {
        name: "control",
        decode: (content, type) => decodeMessage(ControlSchema, content, type),
        prefetch: 16,
        handle: onControl,
        onHandlerError: "drop",
        declareQueue: async (channel) => {
          const declared = await channel.assertQueue("", { exclusive: true, autoDelete: true, durable: false });
          await channel.bindQueue(declared.queue, this.names.controlExchange, "");
          return declared;
        },
      },
      this.publishTimeoutMs,
    );
    return this.track(subscription);
  }

  async listDeadLetters(limit: number): Promise<DeadLetter[]> {
    const channel = await (await this.ready()).createChannel();
    channel.on("error", (error: unknown) => this.log.warn({ err: error }, "dead-letter channel closed"));
    try {
      const letters: DeadLetter[] = [];
      while (letters.length < limit) {
        const message: GetMessage | false = await channel.get(this.names.deadLetterQueue, { noAck: false });
        if (message === false) break;
        letters.push(describeDeadLetter(message));
      }
      // Put them all back where they were: this is a peek.
      channel.nackAll(true);
      return letters;
    } finally {
      await channel.close().catch(() => {
        // Closing the channel returns the messages too.
      });
    }
  }

  async replayDeadLetters(selection: ReplaySelection, limit: number): Promise<ReplayResult> {
    await this.ensureTopology();
    return replayDeadLetters(await this.ready(), this.publisher, this.names, selection, limit);
  }

  async purgeDeadLetters(): Promise<number> {
    await this.ensureTopology();
    return purgeDeadLetters(await this.ready(), this.names);
  }

  async queueDepths(labels: readonly string[]): Promise<Map<string, number | undefined>> {
    return labelQueueDepths(await this.ready(), this.names, labels);
  }

  async deadLetterDepth(): Promise<number> {
    await this.ensureTopology();
    const channel = await (await this.ready()).createChannel();
    try {
      return (await channel.checkQueue(this.names.deadLetterQueue)).messageCount;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  deleteNamespace(): Promise<void> {
    return this.serially(() => this.deleteKnownEntities());
  }

  private async deleteKnownEntities() {
    const names = this.names;
    await deleteEntities(
      await this.ready(),
      [
        ...[...this.labels].map((label) => names.labelQueue(label)),
        ...[...this.owners].map((owner) => names.ownerQueue(owner)),
        names.deadLetterQueue,
      ],
      [names.jobsExchange, names.deadLetterExchange, names.eventsExchange, names.controlExchange],
    );
    this.labels.clear();
    this.owners.clear();
    this.topologyDeclared = false;
  }

  async close(): Promise<void> {
    for (const consumer of this.consumers) {
      await consumer.stop().catch((error: unknown) => this.log.warn({ err: error }, "stopping a consumer failed"));
    }
    this.consumers.clear();
    await this.connection.close();
  }

  private track<C extends JobConsumer | Subscription>(consumer: C): C {
    this.consumers.add(consumer);
    const stop = consumer.stop.bind(consumer);
    consumer.stop = async () => {
      this.consumers.delete(consumer);
      await stop();
    };
    return consumer;
  }

  private properties(type: string, messageId: string) {
    return {
      type,
      messageId,
      contentType: PROTOBUF_CONTENT_TYPE,
      timestamp: Math.floor(Date.now() / 1000),
      appId: this.opts.clientName ?? "solstice",
    };
  }

  private async servedLabels(): Promise<string[]> {
    const served = new Set(this.labels);
    if (this.opts.servedLabels) {
      try {
        for (const label of await this.opts.servedLabels()) served.add(label);
      } catch (error) {
        this.log.warn({ err: error }, "could not list served labels for an error hint");
      }
    }
    return [...served].sort();
  }

  private ready(): Promise<ChannelModel> {
    return this.connection.ready(this.publishTimeoutMs);
  }

  private redeclare(model: ChannelModel): Promise<void> {
    return this.serially(async () => {
      if (this.topologyDeclared) await declareCoreTopology(model, this.names, this.limits);
      for (const label of this.labels) await declareLabelQueue(model, this.names, label, this.limits);
    });
  }

  private async ensureTopology() {
    if (!this.topologyDeclared) await this.declareTopology();
  }

  private serially<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.topologyQueue.then(operation, operation);
    this.topologyQueue = result.catch(() => {
      // The caller of `operation` gets its error; the queue only orders.
    });
    return result;
  }
}
