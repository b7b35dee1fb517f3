/** What went wrong in a VM backend, as a stable machine-readable code. */
export type VmErrorCode =
  | "boot_failed"
  | "boot_timeout"
  | "qemu_exited"
  | "aborted"
  | "command_failed"
  | "qmp_failed"
  | "image_unsupported"
  | "unsupported";

/** A VM failure with a code, an actionable message and an optional hint. Never carries key material. */
export class VmError extends Error {
  readonly code: VmErrorCode;
  readonly hint: string | undefined;

  constructor(code: VmErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(`[${code}] ${message}`, { cause: options.cause });
    this.name = "VmError";
    this.code = code;
    this.hint = options.hint;
  }

  /** Wraps anything thrown on the VM path, keeping a VmError as it is. */
  static from(err: unknown, code: VmErrorCode = "boot_failed"): VmError {
    if (err instanceof VmError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new VmError(code, message, { cause: err });
  }
}
