/** What went wrong on the SSH path, as a stable machine-readable code. */
export type SshErrorCode =
  | "host_key_mismatch"
  | "connect_failed"
  | "banner_timeout"
  | "aborted"
  | "channel_failed"
  | "command_too_long"
  | "upload_failed";

/** An SSH failure with a code, an actionable message and an optional hint. Never carries key material. */
export class SshError extends Error {
  readonly code: SshErrorCode;
  readonly hint: string | undefined;

  constructor(code: SshErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(`[${code}] ${message}`, { cause: options.cause });
    this.name = "SshError";
    this.code = code;
    this.hint = options.hint;
  }

  /** Wraps anything thrown on the SSH path, keeping an SshError as it is. */
  static from(err: unknown, code: SshErrorCode = "channel_failed"): SshError {
    if (err instanceof SshError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new SshError(code, message, { cause: err });
  }
}

/** The server presented a host key other than the pinned one: possibly not our VM at all. */
export class HostKeyMismatchError extends SshError {
  constructor(host: string, port: number, presentedFingerprint: string) {
    super(
      "host_key_mismatch",
      `${host}:${port} presented host key ${presentedFingerprint}, which is not the key pinned for this VM`,
      { hint: "the guest did not install the seed's host key, or another process answers on this port" },
    );
    this.name = "HostKeyMismatchError";
  }
}
