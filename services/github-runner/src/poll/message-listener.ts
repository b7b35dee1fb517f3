import type { KeyObject } from "node:crypto";
import { hostname, release } from "node:os";
import { httpRequest, jsonOf } from "../client/http.ts";
import { joinUrl } from "../client/url-join.ts";
import { type BearerAuth, LOCATIONS, VssClient } from "../client/vss-client.ts";
import { bool, isRecord, num, prop, str } from "../client/wire-json.ts";
import { GitHubRunnerError, HttpStatusError } from "../errors.ts";
import type { RunnerSettings } from "../registration/runner-files.ts";
import { RUNNER_ARCH, RUNNER_OS, RUNNER_VERSION } from "../version.ts";
import { decryptBody, type SessionKey, sessionAesKey } from "./message-crypto.ts";

export interface RunnerMessage {
  messageId: number;
  messageType: string;
  /** Decrypted when the session encrypts. */
  body: string;
  /** Which channel it came from: a classic message is deleted after handling, a broker one is not. */
  via: "classic" | "broker";
  /** The broker that sent it, for the acknowledgement. */
  broker?: string;
}

export type RunnerStatus = "Online" | "Busy";

const EMPTY_GUID = "00000000-0000-0000-0000-000000000000";

export interface MessageListenerOptions {
  settings: RunnerSettings;
  tokens: BearerAuth;
  key: KeyObject;
  /** Deadline of one long poll. Default 60000, the official runner's message-queue timeout. */
  pollTimeoutMs?: number;
}

/**
 * The runner's session and its message long-poll, on the pipelines service (classic) or on the
 * broker (`useV2Flow`), following a BrokerMigration to the broker with the same session.
 */
export class MessageListener {
  private sessionId: string | undefined;
  private aesKey: Buffer | undefined;
  private lastMessageId = 0;
  private readonly vss: VssClient | undefined;

  constructor(private readonly opts: MessageListenerOptions) {
    if (!opts.settings.useV2Flow) this.vss = new VssClient(opts.settings.serverUrl, opts.tokens);
  }

  get flow(): "classic" | "broker" {
    return this.opts.settings.useV2Flow ? "broker" : "classic";
  }

  get hasSession(): boolean {
    return this.sessionId !== undefined;
  }

  /** Creates the session; 409 (another listener has one for this runner) is a GitHubRunnerError session_conflict. */
  async createSession(signal?: AbortSignal): Promise<void> {
    const { settings } = this.opts;
    const body = {
      sessionId: EMPTY_GUID,
      ownerName: `${hostname()} (PID: ${process.pid})`,
      agent: {
        id: settings.agentId,
        name: settings.agentName,
        version: RUNNER_VERSION,
        osDescription: `${RUNNER_OS} ${release()} (Solstice CI)`,
      },
      useFipsEncryption: false,
    };
    let session: unknown;
    try {
      session = this.vss
        ? jsonOf(
            await this.vss.call({
              method: "POST",
              location: LOCATIONS.sessions,
              apiVersion: "5.1-preview.1",
              route: { poolId: settings.poolId },
              json: body,
              ...(signal ? { signal } : {}),
            }),
          )
        : jsonOf(
            await httpRequest({
              method: "POST",
              url: joinUrl(settings.serverUrlV2, "session"),
              headers: { Authorization: `Bearer ${await this.opts.tokens.token(signal)}`, Accept: "application/json" },
              json: body,
              timeoutMs: 60_000,
              ...(signal ? { signal } : {}),
            }),
          );
    } catch (error) {
      if (error instanceof HttpStatusError && error.status === 409) {
        throw new GitHubRunnerError(
          "session_conflict",
          `another runner process holds a session for runner ${settings.agentName}`,
          "stop the other process using this registration, or register a second runner",
          { cause: error },
        );
      }
      throw error;
    }
    const sessionId = str(prop(session, "sessionId"));
    if (!sessionId || sessionId === EMPTY_GUID)
      throw new GitHubRunnerError("protocol_error", "GitHub created a session without an id");
    this.sessionId = sessionId;
    const key = prop(session, "encryptionKey");
    const value = str(prop(key, "value"));
    this.aesKey = value
      ? sessionAesKey(
          { encrypted: bool(prop(key, "encrypted")) ?? false, value } satisfies SessionKey,
          this.opts.key,
          bool(prop(session, "useFipsEncryption")) ?? false,
        )
      : undefined;
  }

  /** Deletes the session (on shutdown); best effort. */
  async deleteSession(): Promise<void> {
    const sessionId = this.sessionId;
    this.sessionId = undefined;
    if (!sessionId) return;
    const { settings } = this.opts;
    if (this.vss) {
      await this.vss.call({
        method: "DELETE",
        location: LOCATIONS.sessions,
        apiVersion: "5.1-preview.1",
        route: { poolId: settings.poolId, sessionId },
        timeoutMs: 10_000,
      });
    } else {
      await httpRequest({
        method: "DELETE",
        url: joinUrl(settings.serverUrlV2, "session"),
        headers: { Authorization: `Bearer ${await this.opts.tokens.token()}` },
        timeoutMs: 10_000,
      });
    }
  }

  /** Forgets the session (the service expired it); the caller creates a new one. */
  dropSession(): void {
    this.sessionId = undefined;
    this.aesKey = undefined;
  }

  private pollQuery(status: RunnerStatus): Record<string, string> {
    return {
      sessionId: this.sessionId ?? "",
      status,
      runnerVersion: RUNNER_VERSION,
      os: RUNNER_OS,
      architecture: RUNNER_ARCH,
      disableUpdate: "true",
    };
  }

  /** One long poll: a message, or undefined when the service had none before it let go. */
  async getMessage(status: RunnerStatus, signal?: AbortSignal): Promise<RunnerMessage | undefined> {
    if (!this.sessionId) throw new GitHubRunnerError("protocol_error", "polled without a session");
    const timeoutMs = this.opts.pollTimeoutMs ?? 60_000;
    if (!this.vss) return this.brokerMessage(this.opts.settings.serverUrlV2, status, timeoutMs, signal);
    const res = await this.vss.call({
      method: "GET",
      location: LOCATIONS.messages,
      apiVersion: "6.0-preview.1",
      route: { poolId: this.opts.settings.poolId },
      query: { ...this.pollQuery(status), lastMessageId: this.lastMessageId > 0 ? this.lastMessageId : undefined },
      timeoutMs,
      ...(signal ? { signal } : {}),
    });
    const message = this.readMessage(jsonOf(res), "classic");
    if (message?.messageType === "BrokerMigration") {
      const brokerBaseUrl = str(prop(JSON.parse(message.body), "brokerBaseUrl"));
      if (!brokerBaseUrl) throw new GitHubRunnerError("protocol_error", "a BrokerMigration message named no broker");
      return this.brokerMessage(brokerBaseUrl, status, timeoutMs, signal);
    }
    return message;
  }

  private async brokerMessage(
    broker: string,
    status: RunnerStatus,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<RunnerMessage | undefined> {
    const query = new URLSearchParams(this.pollQuery(status));
    const res = await httpRequest({
      method: "GET",
      url: `${joinUrl(broker, "message")}?${query}`,
      headers: { Authorization: `Bearer ${await this.opts.tokens.token(signal)}`, Accept: "application/json" },
      timeoutMs,
      ...(signal ? { signal } : {}),
    });
    return this.readMessage(jsonOf(res), "broker", broker);
  }

  private readMessage(body: unknown, via: RunnerMessage["via"], broker?: string): RunnerMessage | undefined {
    if (!isRecord(body)) return undefined;
    const messageId = num(prop(body, "messageId")) ?? 0;
    const messageType = str(prop(body, "messageType")) ?? "";
    let text = str(prop(body, "body")) ?? "";
    const iv = str(prop(body, "iV"));
    if (iv && this.aesKey) text = decryptBody(text, iv, this.aesKey);
    if (via === "classic" && messageId > this.lastMessageId) this.lastMessageId = messageId;
    return { messageId, messageType, body: text, via, ...(broker ? { broker } : {}) };
  }

  /** Classic messages are deleted once handled; broker messages are acknowledged instead (`acknowledge`). */
  async deleteMessage(message: RunnerMessage, signal?: AbortSignal): Promise<void> {
    if (message.via !== "classic" || !this.vss || !this.sessionId) return;
    await this.vss.call({
      method: "DELETE",
      location: LOCATIONS.messages,
      apiVersion: "5.1-preview.1",
      route: { poolId: this.opts.settings.poolId, messageId: message.messageId },
      query: { sessionId: this.sessionId },
      timeoutMs: 30_000,
      ...(signal ? { signal } : {}),
    });
  }

  /** Tells the broker the runner took a RunnerJobRequest (5 s, best effort, as the official runner). */
  async acknowledge(message: RunnerMessage, runnerRequestId: string, status: RunnerStatus): Promise<void> {
    const broker = message.broker;
    if (!broker || !this.sessionId) return;
    const { disableUpdate: _ignored, ...query } = this.pollQuery(status);
    await httpRequest({
      method: "POST",
      url: `${joinUrl(broker, "acknowledge")}?${new URLSearchParams(query)}`,
      headers: { Authorization: `Bearer ${await this.opts.tokens.token()}`, Accept: "application/json" },
      json: { runnerRequestId },
      timeoutMs: 5_000,
    });
  }
}
