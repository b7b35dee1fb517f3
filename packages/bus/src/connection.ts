import type { ChannelModel } from "amqplib";
import amqp from "amqplib";
import type { Logger } from "pino";
import { BusError, BusUnavailableError } from "./errors.ts";

/** Opens an AMQP connection; a seam so tests can reach the socket. Defaults to amqplib's connect. */
export type ConnectFn = (url: string, socketOptions: Record<string, unknown>) => Promise<ChannelModel>;

export interface ReconnectOptions {
  /** First wait after the connection is lost. Default 200. */
  initialDelayMs: number;
  /** Cap of the exponential backoff. Default 10000. */
  maxDelayMs: number;
}

export type ConnectionState = "connected" | "disconnected";

export interface ConnectionOptions {
  /** One AMQP URL, or the nodes of a cluster separated by commas. */
  url: string;
  log: Logger;
  reconnect: ReconnectOptions;
  connect: ConnectFn;
  /** Shown as the connection's name on the broker. */
  clientName: string;
  onStateChange: ((state: ConnectionState) => void) | undefined;
}

/** Runs after every reconnect, in registration order (topology first, then consumers). */
export type ReconnectHook = (model: ChannelModel) => Promise<void>;

const HEARTBEAT_SECONDS = 10;
const SOCKET_CONNECT_TIMEOUT_MS = 5_000;
const CLOSE_TIMEOUT_MS = 3_000;

/**
 * One AMQP connection that repairs itself: when it is lost it reconnects with capped exponential
 * backoff and jitter until `close()`, then runs the reconnect hooks. Callers that need the
 * connection wait for it with a deadline (`ready`).
 *
 * Given several URLs (a cluster's nodes), it starts at a random one, so a fleet spreads over the
 * nodes, and each attempt after a failure or a lost connection goes to the next node: a host whose
 * node went down is back on another one after one backoff.
 */
export class BusConnection {
  private model: ChannelModel | undefined;
  private closed = false;
  private readonly readyWaiters = new Set<() => void>();
  private readonly hooks = new Set<ReconnectHook>();
  private wakeBackoff: (() => void) | undefined;
  private readonly urls: readonly string[];
  private next: number;
  private broker: string;

  private constructor(private readonly opts: ConnectionOptions) {
    this.urls = brokerUrls(opts.url);
    this.next = Math.floor(Math.random() * this.urls.length);
    this.broker = describeBroker(this.urls[this.next] ?? "");
  }

  /** Connects, retrying with backoff until `timeoutMs` has passed. */
  static async open(opts: ConnectionOptions, timeoutMs: number): Promise<BusConnection> {
    const connection = new BusConnection(opts);
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        connection.adopt(await connection.connectOnce());
        return connection;
      } catch (error) {
        lastError = error;
      }
      const delay = backoffDelay(opts.reconnect, attempt);
      if (Date.now() + delay >= deadline) break;
      opts.log.warn({ broker: connection.broker, attempt, err: lastError }, "cannot reach the broker yet, retrying");
      await sleep(delay);
    }
    const brokers = connection.urls.map(describeBroker).join(", ");
    throw new BusUnavailableError(`cannot connect to the broker at ${brokers} within ${timeoutMs} ms`, {
      hint: `check that RabbitMQ runs at ${brokers} and the credentials in the AMQP URL`,
      cause: lastError,
    });
  }

  get connected(): boolean {
    return this.model !== undefined;
  }

  /** The live connection, if any; lets a caller tell a failure on a stale one from a real one. */
  get current(): ChannelModel | undefined {
    return this.model;
  }

  get brokerAddress(): string {
    return this.broker;
  }

  /** The live connection, waiting up to `timeoutMs` for a reconnect. */
  async ready(timeoutMs: number, signal?: AbortSignal): Promise<ChannelModel> {
    for (;;) {
      if (this.closed) throw new BusError("closed", "the bus is closed");
      signal?.throwIfAborted();
      if (this.model) return this.model;
      const woken = await new Promise<boolean>((resolve) => {
        const wake = () => finish(true);
        const timer = setTimeout(() => finish(false), timeoutMs);
        const onAbort = () => finish(true);
        signal?.addEventListener("abort", onAbort, { once: true });
        const finish = (value: boolean) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          this.readyWaiters.delete(wake);
          resolve(value);
        };
        this.readyWaiters.add(wake);
      });
      if (!woken) {
        throw new BusUnavailableError(`the broker at ${this.broker} has been unreachable for ${timeoutMs} ms`, {
          hint: `check that RabbitMQ runs at ${this.broker}; the bus keeps reconnecting in the background`,
        });
      }
    }
  }

  /** Registers a hook run after each reconnect; returns its removal. */
  onReconnect(hook: ReconnectHook): () => void {
    this.hooks.add(hook);
    return () => this.hooks.delete(hook);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeBackoff?.();
    for (const wake of this.readyWaiters) wake();
    const model = this.model;
    this.model = undefined;
    if (!model) return;
    // A broker that stopped answering without closing the socket would hold close() (it waits for
    // close-ok) and the process with it: past a deadline the socket is dropped instead.
    let timer: NodeJS.Timeout | undefined;
    const answered = await Promise.race([
      model.close().then(
        () => true,
        (error: unknown) => {
          this.opts.log.debug({ err: error }, "broker connection was already gone at close");
          return true;
        },
      ),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), CLOSE_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!answered) {
      this.opts.log.warn({ broker: this.broker }, "the broker did not answer the close; dropping the connection");
      (model.connection as unknown as { stream?: { destroy(): void } }).stream?.destroy();
    }
  }

  /** Connects to the next node in turn; `broker` names it in every log line from then on. */
  private async connectOnce(): Promise<ChannelModel> {
    const raw = this.urls[this.next % this.urls.length] ?? "";
    this.next = (this.next + 1) % this.urls.length;
    this.broker = describeBroker(raw);
    const url = new URL(raw);
    if (!url.searchParams.has("heartbeat")) url.searchParams.set("heartbeat", String(HEARTBEAT_SECONDS));
    return this.opts.connect(url.toString(), {
      timeout: SOCKET_CONNECT_TIMEOUT_MS,
      clientProperties: { connection_name: this.opts.clientName },
    });
  }

  private adopt(model: ChannelModel) {
    model.on("error", (error: unknown) => {
      this.opts.log.warn({ broker: this.broker, err: error }, "broker connection error");
    });
    model.on("blocked", (reason: unknown) => {
      this.opts.log.warn({ broker: this.broker, reason }, "broker blocked publishing (resource alarm)");
    });
    model.on("unblocked", () => this.opts.log.info({ broker: this.broker }, "broker unblocked publishing"));
    model.on("close", () => {
      if (this.model !== model) return;
      this.model = undefined;
      if (this.closed) return;
      this.opts.log.warn({ broker: this.broker }, "lost the broker connection; reconnecting");
      this.opts.onStateChange?.("disconnected");
      void this.reconnect();
    });
    this.model = model;
    for (const wake of this.readyWaiters) wake();
  }

  private async reconnect() {
    for (let attempt = 0; !this.closed; attempt++) {
      await this.backoff(backoffDelay(this.opts.reconnect, attempt));
      if (this.closed) return;
      let model: ChannelModel;
      try {
        model = await this.connectOnce();
      } catch (error) {
        this.opts.log.warn({ broker: this.broker, attempt: attempt + 1, err: error }, "reconnect failed");
        continue;
      }
      if (this.closed) {
        await model.close().catch(() => {
          // Closing anyway.
        });
        return;
      }
      this.adopt(model);
      this.opts.log.info({ broker: this.broker, attempts: attempt + 1 }, "reconnected to the broker");
      for (const hook of this.hooks) {
        try {
          await hook(model);
        } catch (error) {
          this.opts.log.error({ err: error }, "restoring bus state after reconnect failed");
        }
      }
      this.opts.onStateChange?.("connected");
      return;
    }
  }

  private backoff(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, delayMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeBackoff = done;
    });
  }
}

/** Capped exponential backoff with jitter in [delay/2, delay], so hosts do not reconnect in step. */
export function backoffDelay(options: ReconnectOptions, attempt: number): number {
  const exponential = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.min(attempt, 30));
  return Math.round(exponential / 2 + (Math.random() * exponential) / 2);
}

/** The URLs of a comma-separated list, in order; BusError when there is none. */
export function brokerUrls(list: string): string[] {
  const urls = list
    .split(",")
    .map((url) => url.trim())
    .filter(Boolean);
  if (urls.length === 0) {
    throw new BusError("bus_unavailable", "no broker URL given", { hint: "set SOLSTICE_AMQP_URL" });
  }
  return urls;
}

/** host:port/vhost, without credentials, for logs and messages. */
function describeBroker(url: string): string {
  try {
    const parsed = new URL(url);
    const vhost = decodeURIComponent(parsed.pathname.replace(/^\//, "")) || "/";
    return `${parsed.hostname}:${parsed.port || "5672"} (vhost ${vhost})`;
  } catch {
    return "(unparseable AMQP URL)";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export const defaultConnect: ConnectFn = (url, socketOptions) => amqp.connect(url, socketOptions);
