/** What went wrong with a cache request; the server maps each code to an HTTP status. */
export type CacheErrorCode =
  | "too_large"
  | "exists"
  | "not_found"
  | "conflict"
  | "bad_range"
  | "incomplete"
  | "bad_request"
  | "unauthorized";

export class CacheError extends Error {
  override readonly name = "CacheError";
  constructor(
    readonly code: CacheErrorCode,
    message: string,
  ) {
    super(message);
  }
}
