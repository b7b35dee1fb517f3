import { connect, type Socket } from "node:net";
import { VmError } from "./errors.ts";

/** Longest QMP reply line accepted; QMP replies for our commands are tiny. */
const MAX_REPLY_BYTES = 1024 * 1024;

/**
 * A QMP connection to one VM. QMP serves one client at a time, so each VM keeps exactly one of these
 * and sends its commands one after another.
 */
export class QmpClient {
  private socket: Socket | undefined;
  private buffer = "";
  private waiter: { resolve(v: unknown): void; reject(e: Error): void } | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly socketPath: string) {}

  /** Sends one command and resolves with its `return` value; `timeoutMs` bounds connect + reply. */
  execute(command: string, timeoutMs: number, args?: Record<string, unknown>): Promise<unknown> {
    const run = this.queue.then(() => this.executeNow(command, timeoutMs, args));
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private async executeNow(command: string, timeoutMs: number, args?: Record<string, unknown>): Promise<unknown> {
    const timer = setTimeout(() => this.fail(new VmError("qmp_failed", `QMP ${command} timed out`)), timeoutMs);
    try {
      if (!this.socket) await this.open();
      const reply = this.nextMessage();
      this.socket?.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
      return await reply;
    } finally {
      clearTimeout(timer);
    }
  }

  private async open(): Promise<void> {
    const socket = connect(this.socketPath);
    this.socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => this.onData(text));
    socket.on("error", (err) => this.fail(new VmError("qmp_failed", `QMP socket: ${err.message}`, { cause: err })));
    socket.on("close", () => {
      this.socket = undefined;
      this.fail(new VmError("qmp_failed", "QMP connection closed"));
    });
    await this.nextMessage();
    const caps = this.nextMessage();
    socket.write(`${JSON.stringify({ execute: "qmp_capabilities" })}\n`);
    await caps;
  }

  private nextMessage(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private onData(text: string): void {
    this.buffer += text;
    if (this.buffer.length > MAX_REPLY_BYTES) {
      this.fail(new VmError("qmp_failed", "QMP reply too large"));
      this.close();
      return;
    }
    for (;;) {
      const nl = this.buffer.indexOf("\n");
      if (nl === -1) return;
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line === "") continue;
      const message = JSON.parse(line) as {
        QMP?: unknown;
        return?: unknown;
        error?: { desc?: string };
        event?: string;
      };
      if (message.event !== undefined) continue;
      const waiter = this.waiter;
      this.waiter = undefined;
      if (message.error) waiter?.reject(new VmError("qmp_failed", `QMP error: ${message.error.desc ?? "unknown"}`));
      else waiter?.resolve(message.QMP ?? message.return);
    }
  }

  private fail(err: Error): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
  }
}
