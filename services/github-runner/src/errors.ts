export type GitHubRunnerErrorCode =
  | "github_unreachable"
  | "registration_refused"
  | "already_configured"
  | "not_configured"
  | "runner_deleted"
  | "credentials_refused"
  | "session_conflict"
  | "protocol_error"
  | "invalid_settings";

/** An error a user can act on: the code first, then what happened, then what to do. */
export class GitHubRunnerError extends Error {
  override name = "GitHubRunnerError";
  constructor(
    readonly code: GitHubRunnerErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(`[${code}] ${message}${hint ? `; ${hint}` : ""}`, options);
  }
}

/**
 * A non-2xx answer. `kind` is what the service put in its error body: the pipelines service's
 * WrappedException `typeKey`, the broker's `errorKind`, the run service's message, or OAuth's
 * `error`. The raw body is kept apart and never holds a secret of ours.
 */
export class HttpStatusError extends Error {
  override name = "HttpStatusError";
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    readonly kind: string,
    readonly detail: string,
    readonly retryAfterMs?: number,
  ) {
    super(`${method} ${url} answered ${status}${kind ? ` ${kind}` : ""}${detail ? `: ${detail}` : ""}`);
  }
}

/** No answer at all: refused, reset, DNS, or the call's deadline passed. */
export class HttpUnreachableError extends Error {
  override name = "HttpUnreachableError";
  constructor(
    readonly method: string,
    readonly url: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${method} ${url}: no answer (${reason})`, options);
  }
}
