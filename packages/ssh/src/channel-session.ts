import { constants } from "node:os";
import type { Duplex } from "node:stream";
import { SshError } from "./errors.ts";
import { type ExecOptions, type ExecResult, GuestSession } from "./guest-session.ts";
import { LineSplitter } from "./line-splitter.ts";
import { exportLines, shellQuote } from "./shell-quote.ts";

/*
 * The host's end of job-commands (packages/images/recipes/job-commands.c, whose header describes
 * the frames): the job's commands on the key agent's private channel, without SSH (decision 0010).
 */
const HEAD = 9;
/** The longest payload either side sends or accepts (job-commands.c MAX_PAYLOAD). */
const MAX_PAYLOAD = 65_536;
/** Standard input the guest takes for a command before it says it passed it on (STDIN_WINDOW). */
const STDIN_WINDOW = 256 * 1024;

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name]));

interface RunningCommand {
  readonly out: LineSplitter;
  readonly err: LineSplitter;
  /** Input still to send, in order; end-of-file follows it. */
  readonly input: Buffer[];
  endSent: boolean;
  /** Input bytes the guest will take now. */
  credit: number;
  finish(result: ExecResult): void;
}

/**
 * Commands in a guest over its key agent's channel (a stream to job-commands, its greeting line
 * already read). Trust is the channel's: only the host's service user reaches its socket and only
 * the guest's root its device (decision 0010); what runs is what SSH would run, through the user's
 * shell with the login environment, so a step sees the same either way.
 */
export class ChannelSession extends GuestSession {
  private readonly commands = new Map<number, RunningCommand>();
  private nextId = 1;
  private received: Buffer = Buffer.alloc(0);
  private closed = false;

  constructor(
    private readonly stream: Duplex,
    /** Who the commands run as, for messages. */
    private readonly user: string,
  ) {
    super();
    stream.on("data", (chunk: Buffer) => this.receive(chunk));
    stream.on("error", () => stream.destroy());
    stream.on("close", () => this.lost());
    stream.resume();
  }

  get open(): boolean {
    return !this.closed;
  }

  get address(): string {
    return `${this.user}@the key agent's channel`;
  }

  close(): void {
    this.stream.destroy();
  }

  /** Writes `content` to `remotePath` with `mode`: the bytes on a command's standard input. */
  async upload(remotePath: string, content: string | Buffer, mode: number): Promise<void> {
    const path = shellQuote(remotePath);
    await this.feed(`umask 077 && cat > ${path} && chmod ${mode.toString(8)} ${path}`, content, `upload ${remotePath}`);
  }

  protected execOnce(command: string, opts: ExecOptions): Promise<ExecResult> {
    const full = Buffer.from(opts.env ? `${exportLines(opts.env)}${command}` : command);
    return new Promise<ExecResult>((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(new SshError("aborted", "command aborted before it started"));
        return;
      }
      if (this.closed) {
        reject(new SshError("connect_failed", "the key agent's channel is closed"));
        return;
      }
      if (full.length > MAX_PAYLOAD) {
        reject(
          new SshError("command_too_long", `a command line of ${full.length} bytes is longer than the channel takes`, {
            hint: `pass long data on standard input; a command line may be ${MAX_PAYLOAD} bytes`,
          }),
        );
        return;
      }
      const id = this.nextId++;
      // A Buffer is sent as it is (an action's archive is tens of MB): only text is encoded.
      const stdin = typeof opts.stdin === "string" ? Buffer.from(opts.stdin) : (opts.stdin ?? Buffer.alloc(0));
      const onAbort = () => {
        this.commands.delete(id);
        this.send("C", id);
        reject(new SshError("aborted", "command aborted"));
      };
      const running: RunningCommand = {
        out: new LineSplitter((line, continued) => opts.onStdout?.(line, continued)),
        err: new LineSplitter((line, continued) => opts.onStderr?.(line, continued)),
        input: stdin.length > 0 ? [stdin] : [],
        endSent: false,
        credit: STDIN_WINDOW,
        finish: (result) => {
          opts.signal?.removeEventListener("abort", onAbort);
          running.out.flush();
          running.err.flush();
          resolve(result);
        },
      };
      this.commands.set(id, running);
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      this.send("O", id, full);
      this.sendInput(id, running);
    });
  }

  /** Sends as much of the command's input as the guest takes now, then its end. */
  private sendInput(id: number, command: RunningCommand): void {
    while (command.input.length > 0 && command.credit > 0) {
      const head = command.input[0] as Buffer;
      const size = Math.min(head.length, command.credit, MAX_PAYLOAD);
      this.send("I", id, head.subarray(0, size));
      command.credit -= size;
      if (size === head.length) command.input.shift();
      else command.input[0] = head.subarray(size);
    }
    if (command.input.length === 0 && !command.endSent) {
      command.endSent = true;
      this.send("i", id);
    }
  }

  private send(type: string, id: number, payload: Buffer = Buffer.alloc(0)): void {
    if (this.closed) return;
    const head = Buffer.alloc(HEAD);
    head.write(type, 0, "latin1");
    head.writeUInt32BE(id, 1);
    head.writeUInt32BE(payload.length, 5);
    this.stream.write(payload.length > 0 ? Buffer.concat([head, payload]) : head);
  }

  private receive(chunk: Buffer): void {
    this.received = this.received.length > 0 ? Buffer.concat([this.received, chunk]) : chunk;
    let at = 0;
    while (this.received.length - at >= HEAD) {
      const length = this.received.readUInt32BE(at + 5);
      if (length > MAX_PAYLOAD) {
        // Not the guest's server, or one that lost its place: nothing after this can be read.
        this.stream.destroy(new Error(`the guest sent a frame of ${length} bytes`));
        return;
      }
      if (this.received.length - at < HEAD + length) break;
      const type = String.fromCharCode(this.received[at] as number);
      const id = this.received.readUInt32BE(at + 1);
      this.take(type, id, this.received.subarray(at + HEAD, at + HEAD + length));
      at += HEAD + length;
    }
    this.received = this.received.subarray(at);
  }

  private take(type: string, id: number, payload: Buffer): void {
    // Frames for a command the host closed (aborted) may still come: they are dropped.
    const command = this.commands.get(id);
    if (!command) return;
    if (type === "o") command.out.push(payload);
    else if (type === "e") command.err.push(payload);
    else if (type === "w" && payload.length === 4) {
      command.credit += payload.readUInt32BE(0);
      this.sendInput(id, command);
    } else if (type === "x" && payload.length === 4) {
      this.commands.delete(id);
      const status = payload.readInt32BE(0);
      if (status >= 0) command.finish({ exitCode: status });
      else command.finish({ exitCode: null, signal: SIGNAL_NAMES.get(-status) ?? `SIG${-status}` });
    }
  }

  /** The channel is gone: every command ends without a status, as an SSH channel that closed does. */
  private lost(): void {
    this.closed = true;
    for (const command of this.commands.values()) command.finish({ exitCode: null });
    this.commands.clear();
  }
}
