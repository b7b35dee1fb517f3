import type { Duplex } from "node:stream";
import { Client, type ClientChannel, type SFTPWrapper } from "ssh2";
import { HostKeyMismatchError, SshError } from "./errors.ts";
import { type ExecOptions, type ExecResult, GuestSession } from "./guest-session.ts";
import { fingerprint, hostKeyBlob } from "./host-key.ts";
import { LineSplitter } from "./line-splitter.ts";
import { exportLines } from "./shell-quote.ts";
import type { SshTarget } from "./target.ts";

/** One authenticated SSH connection to a VM, with its host key pinned. */
export class SshSession extends GuestSession {
  private sftpChannel: Promise<SFTPWrapper> | undefined;
  private closed = false;

  constructor(
    private readonly client: Client,
    private readonly target: SshTarget,
  ) {
    super();
    client.on("close", () => {
      this.closed = true;
    });
  }

  /** False once the connection has closed (ended here, by the server, or by failed keepalives). */
  get open(): boolean {
    return !this.closed;
  }

  /** Writes `content` to `remotePath` over SFTP and sets its mode. */
  async upload(remotePath: string, content: string | Buffer, mode: number): Promise<void> {
    try {
      const sftp = await this.sftp();
      await new Promise<void>((resolve, reject) => {
        sftp.writeFile(remotePath, content, { mode }, (err) => (err ? reject(err) : resolve()));
      });
      // The server applies its umask to the open mode; set the mode explicitly.
      await new Promise<void>((resolve, reject) => {
        sftp.chmod(remotePath, mode, (err) => (err ? reject(err) : resolve()));
      });
    } catch (err) {
      throw new SshError("upload_failed", `could not upload ${remotePath}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  protected execOnce(command: string, opts: ExecOptions): Promise<ExecResult> {
    const full = opts.env ? `${exportLines(opts.env)}${command}` : command;
    return new Promise<ExecResult>((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(new SshError("aborted", "command aborted before it started"));
        return;
      }
      this.client.exec(full, (err, channel) => {
        if (err) {
          reject(new SshError("channel_failed", `could not start a command: ${err.message}`, { cause: err }));
          return;
        }
        // Aborted while the request was on its way: the command has started, but gets no input.
        if (opts.signal?.aborted) {
          channel.close();
          reject(new SshError("aborted", "command aborted as it started"));
          return;
        }
        this.follow(channel, opts).then(resolve, reject);
        // The command's standard input: the given text, then end-of-file.
        channel.end(opts.stdin);
      });
    });
  }

  /** Closes the connection; idempotent. */
  close(): void {
    this.client.end();
  }

  private follow(channel: ClientChannel, opts: ExecOptions): Promise<ExecResult> {
    return new Promise<ExecResult>((resolve, reject) => {
      const out = new LineSplitter((line, continued) => opts.onStdout?.(line, continued));
      const err = new LineSplitter((line, continued) => opts.onStderr?.(line, continued));
      let exitCode: number | null = null;
      let exitSignal: string | undefined;
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        channel.close();
        reject(new SshError("aborted", "command aborted"));
      };
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      channel.on("data", (chunk: Buffer) => out.push(chunk));
      channel.stderr.on("data", (chunk: Buffer) => err.push(chunk));
      channel.on("exit", (code: number | null, signalName?: string) => {
        exitCode = typeof code === "number" ? code : null;
        if (signalName) exitSignal = signalName;
      });
      channel.on("close", () => {
        opts.signal?.removeEventListener("abort", onAbort);
        if (settled) return;
        settled = true;
        out.flush();
        err.flush();
        resolve(exitSignal === undefined ? { exitCode } : { exitCode, signal: exitSignal });
      });
    });
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpChannel ??= new Promise<SFTPWrapper>((resolve, reject) => {
      this.client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp)));
    });
    this.sftpChannel.catch(() => {
      this.sftpChannel = undefined;
    });
    return this.sftpChannel;
  }

  /** For error messages: where this session points. */
  get address(): string {
    return `${this.target.username}@${this.target.host}:${this.target.port}`;
  }
}

/**
 * Opens an SSH connection that accepts only `target.hostKey` (a different key fails with
 * `HostKeyMismatchError`). `readyTimeoutMs` (default 20000) bounds the handshake and authentication.
 * `keepaliveIntervalMs` sends keepalives on an idle connection and closes it after 3 unanswered,
 * for a connection held open ahead of its use (a warm VM's), which must not be found half-open.
 * `sock`: a stream already connected to the server (a guest's SSH server on its key agent's
 * private channel) instead of a TCP connection to `target.host:port`; the host key is pinned all
 * the same.
 */
export function connectSsh(
  target: SshTarget,
  opts: { signal?: AbortSignal; readyTimeoutMs?: number; keepaliveIntervalMs?: number; sock?: Duplex } = {},
): Promise<SshSession> {
  const pinned = hostKeyBlob(target.hostKey);
  return new Promise<SshSession>((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new SshError("aborted", `connecting to ${target.host}:${target.port} was aborted`));
      return;
    }
    const client = new Client();
    let mismatch: HostKeyMismatchError | undefined;
    let settled = false;
    const fail = (err: SshError) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener("abort", onAbort);
      client.end();
      reject(err);
    };
    const onAbort = () => fail(new SshError("aborted", `connecting to ${target.host}:${target.port} was aborted`));
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    client.on("ready", () => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener("abort", onAbort);
      resolve(new SshSession(client, target));
    });
    client.on("error", (err) => {
      fail(
        mismatch ??
          new SshError("connect_failed", `SSH to ${target.host}:${target.port} failed: ${err.message}`, {
            cause: err,
          }),
      );
    });
    client.on("close", () => fail(mismatch ?? new SshError("connect_failed", "connection closed before ready")));
    client.connect({
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      // Straight to the job's key: without this the client first asks for "none" and is refused,
      // one round trip more through a guest that may be emulated.
      authHandler: ["publickey"],
      readyTimeout: opts.readyTimeoutMs ?? 20_000,
      ...(opts.sock ? { sock: opts.sock } : {}),
      ...(opts.keepaliveIntervalMs ? { keepaliveInterval: opts.keepaliveIntervalMs, keepaliveCountMax: 3 } : {}),
      hostVerifier: (key: Buffer) => {
        if (key.equals(pinned)) return true;
        mismatch = new HostKeyMismatchError(target.host, target.port, fingerprint(key));
        return false;
      },
    });
    // Each SSH request is written as several small packets, and a connection into a VM goes
    // through pasta and QEMU's user network, whose acknowledgements can wait 40 ms: with Nagle's
    // algorithm each round trip waited for one (an exec over TCP 113 → 85 ms under TCG). No
    // effect on a stream that is not TCP (the agent's channel).
    client.setNoDelay(true);
  });
}
