import type { Logger } from "pino";
import WebSocket from "ws";
import { redactUrl } from "../client/http.ts";
import { USER_AGENT } from "../version.ts";

/**
 * The live console over a WebSocket to SystemVssConnection's `FeedStreamUrl` (http(s) → ws(s)),
 * authorised with the job's token, one JSON text frame per batch — what the official runner does
 * for broker jobs. Live lines are best effort: after three failed reconnects the feed stops and
 * the uploaded log at the end has everything.
 */
export class FeedSocket {
  private socket: WebSocket | undefined;
  private opening: Promise<WebSocket> | undefined;
  private failures = 0;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly log: Logger,
  ) {}

  get usable(): boolean {
    return this.url !== "" && this.failures < 3;
  }

  private open(): Promise<WebSocket> {
    if (this.socket?.readyState === WebSocket.OPEN) return Promise.resolve(this.socket);
    this.opening ??= new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(this.url.replace(/^http/, "ws"), {
        headers: { Authorization: `Bearer ${this.token}`, "User-Agent": USER_AGENT },
        handshakeTimeout: 10_000,
      });
      socket.once("open", () => {
        this.socket = socket;
        resolve(socket);
      });
      socket.once("error", reject);
      socket.on("close", () => {
        if (this.socket === socket) this.socket = undefined;
      });
    }).finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  async send(stepId: string, lines: string[], startLine: number): Promise<void> {
    if (!this.usable) return;
    const frame = JSON.stringify({ count: lines.length, value: lines, stepId, startLine });
    try {
      const socket = await this.open();
      await new Promise<void>((resolve, reject) => socket.send(frame, (error) => (error ? reject(error) : resolve())));
      this.failures = 0;
    } catch (error) {
      this.failures++;
      this.socket?.terminate();
      this.socket = undefined;
      this.log.warn(
        { err: (error as Error).message, url: redactUrl(this.url), failures: this.failures },
        "live log feed failed",
      );
    }
  }

  close(): void {
    this.socket?.close(1000);
    this.socket = undefined;
  }
}
