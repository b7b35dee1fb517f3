/** What went wrong, for code that branches on it and for the front of a log line. */
export type ImageErrorCode =
  | "unknown_image"
  | "build_failed"
  | "lock_timeout"
  | "bad_manifest"
  | "bad_catalog"
  | "download_failed"
  | "checksum_mismatch"
  | "convert_failed";

/** Base of every error this package throws (apart from an AbortSignal's own reason). */
export class ImageError extends Error {
  override readonly name: string = "ImageError";
  readonly code: ImageErrorCode;
  /** What to do next, e.g. the command to run. */
  readonly hint: string | undefined;

  constructor(code: ImageErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(`[${code}] ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
  }
}

/** The label names no image this host can build. */
export class UnknownImageError extends ImageError {
  override readonly name = "UnknownImageError";
  readonly label: string;
  readonly knownLabels: readonly string[];

  constructor(label: string, knownLabels: readonly string[]) {
    super("unknown_image", `no image is called "${label}"; known: ${knownLabels.join(", ")}`, {
      hint: `use one of: ${knownLabels.join(", ")}`,
    });
    this.label = label;
    this.knownLabels = knownLabels;
  }
}

/**
 * A recipe script failed; `logTail` holds its last output lines (no secrets pass through it), and
 * `logDir`, when the build got as far as running, the folder that keeps all of its logs.
 */
export class ImageBuildError extends ImageError {
  override readonly name = "ImageBuildError";
  readonly label: string;
  /** What went wrong, without the label in front. */
  readonly reason: string;
  readonly logTail: string;
  readonly logDir: string | undefined;

  constructor(
    label: string,
    reason: string,
    logTail: string,
    options: { hint?: string; cause?: unknown; logs?: { dir: string; files: readonly string[] } } = {},
  ) {
    const { logs, ...rest } = options;
    super(
      "build_failed",
      `building image "${label}" failed: ${reason}${logs ? `; its logs are kept in ${logs.dir} (${logs.files.join(", ")})` : ""}`,
      rest,
    );
    this.label = label;
    this.reason = reason;
    this.logTail = logTail;
    this.logDir = logs?.dir;
  }
}

/** Another process held the build lock for longer than we were willing to wait. */
export class ImageLockTimeoutError extends ImageError {
  override readonly name = "ImageLockTimeoutError";

  constructor(lockPath: string, waitedMs: number, holder: string, progress?: string) {
    super(
      "lock_timeout",
      `gave up after waiting ${Math.round(waitedMs / 1000)} s for another process building or downloading this image (${holder}${progress ? `, last at ${progress}` : ""}; lock ${lockPath})`,
      { hint: `if no build is running, delete ${lockPath}; otherwise run the job again once it is done` },
    );
  }
}
