import { HttpStatusError, HttpUnreachableError } from "../errors.ts";
import { USER_AGENT } from "../version.ts";

export interface HttpRequest {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  /** Sent as JSON (with a JSON content type unless `headers` names one). */
  json?: unknown;
  /** Sent as is. */
  body?: string | Uint8Array;
  /** Deadline of this call. Default 100000, the official runner's generic HTTP timeout. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  text: string;
}

/** The URL without its query, for errors and logs: signed blob URLs carry their signature there. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid URL)";
  }
}

function retryAfterMs(headers: Headers): number | undefined {
  const value = headers.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * What the service said went wrong, from whichever error shape it uses: the pipelines service's
 * WrappedException (`typeKey`, `message`), the broker's (`errorKind`, `errorMessage`), the run
 * service's (`errorMessage`), OAuth's (`error`, `error_description`), twirp's (`code`, `msg`) or
 * GitHub REST's (`message`); else the `X-TFS-ServiceError` header.
 */
export function describeError(text: string, headers: Headers): { kind: string; detail: string } {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const str = (v: unknown) => (typeof v === "string" ? v : "");
    const kind = str(body.typeKey) || str(body.errorKind) || str(body.error) || str(body.code);
    // Launch's 422 for actions it cannot resolve: {"errors": {"owner/name@ref": {"message": …}}}.
    const resolution =
      typeof body.errors === "object" && body.errors !== null && !Array.isArray(body.errors)
        ? Object.values(body.errors as Record<string, unknown>)
            .map((e) => str((e as Record<string, unknown> | null)?.message))
            .filter(Boolean)
            .join(". ")
        : "";
    const detail =
      str(body.message) || str(body.errorMessage) || str(body.error_description) || str(body.msg) || resolution;
    if (kind || detail) return { kind, detail: detail.slice(0, 500) };
  } catch {
    // Not JSON: fall through to the header.
  }
  const header = headers.get("x-tfs-serviceerror");
  if (header) {
    try {
      return { kind: "", detail: decodeURIComponent(header).slice(0, 500) };
    } catch {
      return { kind: "", detail: header.slice(0, 500) };
    }
  }
  return { kind: "", detail: text.slice(0, 200) };
}

/** One HTTP call with a deadline; non-2xx becomes HttpStatusError, no answer HttpUnreachableError. */
export async function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const headers: Record<string, string> = { "User-Agent": USER_AGENT, ...req.headers };
  let body: string | Uint8Array | undefined = req.body;
  if (req.json !== undefined) {
    body = JSON.stringify(req.json);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
      headers["Content-Type"] = "application/json; charset=utf-8";
    }
  }
  const timeout = AbortSignal.timeout(req.timeoutMs ?? 100_000);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  let res: Response;
  let text: string;
  try {
    res = await fetch(req.url, { method: req.method, headers, ...(body !== undefined ? { body } : {}), signal });
    text = await res.text();
  } catch (error) {
    if (req.signal?.aborted) throw req.signal.reason ?? error;
    const reason = timeout.aborted
      ? `no answer within ${req.timeoutMs ?? 100_000} ms`
      : String((error as Error & { cause?: Error }).cause?.message ?? (error as Error).message);
    throw new HttpUnreachableError(req.method, redactUrl(req.url), reason, { cause: error });
  }
  if (res.status < 200 || res.status > 299) {
    const { kind, detail } = describeError(text, res.headers);
    throw new HttpStatusError(req.method, redactUrl(req.url), res.status, kind, detail, retryAfterMs(res.headers));
  }
  return { status: res.status, headers: res.headers, text };
}

/** The JSON body of a response; an empty body is undefined. */
export function jsonOf(res: HttpResponse): unknown {
  if (res.text.trim() === "") return undefined;
  try {
    return JSON.parse(res.text.replace(/^\uFEFF/, "")) as unknown;
  } catch {
    throw new Error(`the service answered ${res.status} with a body that is not JSON`);
  }
}
