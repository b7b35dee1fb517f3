import { z } from "zod";
import { isPublicKeyLine } from "./public-key-line.ts";

/** Which kind of forge answers; Forgejo and Gitea share the API. */
export type ForgeKind = "github" | "forgejo" | "gitea";

export interface ForgeUserKeysRequest {
  readonly forge: ForgeKind;
  /**
   * GitHub: its web host (default https://github.com; GitHub Enterprise Server: https://ghe.example).
   * Forgejo/Gitea: the instance's root URL, e.g. https://codeberg.org or https://host/forgejo/.
   */
  readonly baseUrl?: string;
  /** The forge user who triggered the job (the `actor`). */
  readonly username: string;
  /** Bound on the whole request, in milliseconds (default 10 000). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export type ForgeKeysErrorCode = "bad_request" | "unreachable" | "http_error" | "bad_response";

/** Fetching a user's keys failed; the runner goes on without forge keys and says why. */
export class ForgeKeysError extends Error {
  override readonly name = "ForgeKeysError";
  constructor(
    readonly code: ForgeKeysErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(`[${code}] ${message}`, options);
  }
}

/** Most keys taken from one user; a forge account rarely has more than a handful. */
export const MAX_FORGE_KEYS = 32;
/** Bound on the response body: 32 RSA-4096 lines are about 24 KiB. */
const MAX_RESPONSE_BYTES = 256 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;
/** Forgejo/Gitea page size; their API caps it at 50 by default. */
const FORGEJO_PAGE_LIMIT = 50;
/** GitHub logins are letters, digits and single hyphens; Forgejo/Gitea also allow `.` and `_`. */
const USERNAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_])?$/;

const forgejoKeys = z.array(z.object({ key: z.string() }).loose());

/**
 * The public SSH keys the forge lists for a user, as authorized_keys lines, for debug SSH into
 * that user's failed job (`JobRequest.debug_access`). GitHub: `GET <host>/<user>.keys` (plain
 * text, one key per line). Forgejo/Gitea: `GET <root>/api/v1/users/<user>/keys` (JSON,
 * `[{ "key": "…" }]`). An unknown user (404) or a bot account has no keys: the result is empty.
 * Lines that are not well-formed public keys are dropped; at most MAX_FORGE_KEYS are returned.
 */
export async function fetchForgeUserKeys(request: ForgeUserKeysRequest): Promise<string[]> {
  const { forge, username } = request;
  // GitHub Apps act as "name[bot]"; they have no SSH keys.
  if (username.endsWith("[bot]")) return [];
  if (!USERNAME.test(username)) {
    throw new ForgeKeysError("bad_request", `not a forge user name: ${JSON.stringify(username.slice(0, 100))}`);
  }
  const url = keysUrl(forge, request.baseUrl, username);
  const timeout = AbortSignal.timeout(request.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, {
      signal,
      redirect: "follow",
      headers: { accept: forge === "github" ? "text/plain" : "application/json" },
    });
  } catch (error) {
    throw new ForgeKeysError("unreachable", `cannot fetch ${url}: ${(error as Error).message}`, checkUrlHint(forge), {
      cause: error,
    });
  }
  if (response.status === 404) {
    await response.body?.cancel();
    return [];
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new ForgeKeysError("http_error", `${url} answered ${response.status} ${response.statusText}`);
  }
  const body = await boundedText(response, url);
  const lines = forge === "github" ? body.split(/\r?\n/) : parseForgejoKeys(body, url);
  return [...new Set(lines.map((line) => line.trim()).filter(isPublicKeyLine))].slice(0, MAX_FORGE_KEYS);
}

function keysUrl(forge: ForgeKind, baseUrl: string | undefined, username: string): URL {
  const root = baseUrl ?? (forge === "github" ? "https://github.com" : undefined);
  if (root === undefined) throw new ForgeKeysError("bad_request", `${forge} needs the instance's baseUrl`);
  let base: URL;
  try {
    base = new URL(root.endsWith("/") ? root : `${root}/`);
  } catch (error) {
    throw new ForgeKeysError("unreachable", `not a URL: ${root}`, checkUrlHint(forge), { cause: error });
  }
  const user = encodeURIComponent(username);
  const url = new URL(forge === "github" ? `${user}.keys` : `api/v1/users/${user}/keys`, base);
  if (forge !== "github") url.searchParams.set("limit", String(FORGEJO_PAGE_LIMIT));
  return url;
}

function parseForgejoKeys(body: string, url: URL): string[] {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (error) {
    throw new ForgeKeysError("bad_response", `${url} did not answer JSON`, undefined, { cause: error });
  }
  const parsed = forgejoKeys.safeParse(json);
  if (!parsed.success) {
    throw new ForgeKeysError(
      "bad_response",
      `${url} did not answer a list of keys: ${parsed.error.issues[0]?.message}`,
    );
  }
  return parsed.data.map((entry) => entry.key);
}

async function boundedText(response: Response, url: URL): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_RESPONSE_BYTES) {
      await reader.cancel();
      throw new ForgeKeysError("bad_response", `${url} answered more than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function checkUrlHint(forge: ForgeKind): string {
  return forge === "github"
    ? "check the GitHub host the runner is configured with"
    : "check the forge URL the runner is configured with";
}
