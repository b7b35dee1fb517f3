import { createReadStream } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { homedir } from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { z } from "zod";
import { CacheError, type CacheErrorCode } from "./cache-error.ts";
import { CacheStore } from "./cache-store.ts";
import { type Grant, JobGrants } from "./job-grants.ts";

export interface JobCacheServerOptions {
  /** Where entries are kept. */
  readonly dir: string;
  /** Bound on the entries' bytes (least recently used go first). */
  readonly maxBytes: number;
  /** Loopback port to listen on; 0 picks a free one. */
  readonly port: number;
  readonly log: Logger;
}

/** One job's way into its repository's cache scope. */
export interface JobCacheOpening {
  /** ACTIONS_CACHE_URL for the job's actions: `baseUrl` + the credential + `/`. */
  readonly url: string;
  /** The credential inside `url`, for the job's masker. */
  readonly credential: string;
  /** Revokes the credential and drops the job's unfinished uploads. */
  close(): Promise<void>;
}

export interface JobCacheServer {
  /** The loopback port the server listens on: the one port a guest's namespace forwards to the host. */
  readonly port: number;
  /**
   * Opens `scope` (a repository) to one job. `baseUrl` is the server as the job's guest reaches it,
   * e.g. `http://10.0.2.2:<port>/` from a QEMU guest.
   */
  open(scope: string, baseUrl: string): JobCacheOpening;
  close(): Promise<void>;
}

/** Largest JSON body the API takes (a reserve or commit request is a few hundred bytes). */
const MAX_JSON_BYTES = 64 * 1024;
const API = "_apis/artifactcache/";
/** Bound on open connections, across all of the host's jobs. */
const MAX_CONNECTIONS = 256;

const reserveSchema = z.object({
  key: z.string().min(1).max(512),
  version: z.string().min(1).max(512),
  cacheSize: z.number().int().nonnegative().optional(),
});
const commitSchema = z.object({ size: z.number().int().nonnegative() });

const STATUS: Record<CacheErrorCode, number> = {
  too_large: 400,
  bad_request: 400,
  bad_range: 400,
  incomplete: 400,
  unauthorized: 401,
  not_found: 404,
  exists: 409,
  conflict: 409,
};

/**
 * The cache service `@actions/cache` speaks when ACTIONS_CACHE_URL is set and
 * ACTIONS_CACHE_SERVICE_V2 is not (its `internal/cacheHttpClient`), on loopback only:
 * - `GET  …/cache?keys=k1,k2&version=v` → 200 `{cacheKey, archiveLocation, …}` or 204 on a miss
 * - `GET  …/caches?key=k` → `{totalCount, artifactCaches}` (the client's diagnostics)
 * - `POST …/caches {key, version, cacheSize}` → 201 `{cacheId}`; 409 when the key exists
 * - `PATCH …/caches/:id` with `Content-Range: bytes s-e/*` → 204
 * - `POST …/caches/:id {size}` → 204 (commit)
 * - `GET  …/artifacts/:id` → the archive (the `archiveLocation`; the client sends no token there)
 *
 * Every path starts with a job's credential (`/<credential>/_apis/artifactcache/…`), as GitHub's
 * own ACTIONS_CACHE_URL carries a per-repository path segment: the credential is the only
 * authority, it opens exactly the scope it was issued for, and it dies with its job. It travels in
 * the path rather than as ACTIONS_RUNTIME_TOKEN because that token belongs to the forge's artifact
 * service on Forgejo (docs/decisions/0007).
 */
export async function startJobCacheServer(options: JobCacheServerOptions): Promise<JobCacheServer> {
  const store = await CacheStore.open({ dir: options.dir, maxBytes: options.maxBytes, log: options.log });
  const grants = new JobGrants();
  const log = options.log;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://cache.invalid");
    const [, credential = "", ...rest] = url.pathname.split("/");
    const grant = credential ? grants.lookup(credential) : undefined;
    if (!grant) throw new CacheError("unauthorized", "unknown or expired job credential");
    const resource = rest.join("/");
    if (!resource.startsWith(API)) throw new CacheError("not_found", `no such resource: ${req.method} ${resource}`);
    const route = resource.slice(API.length);
    const method = req.method ?? "GET";
    const idMatch = /^(caches|artifacts)\/(\d{1,15})$/.exec(route);
    const id = idMatch ? Number(idMatch[2]) : undefined;

    if (method === "GET" && route === "cache") {
      const keys = (url.searchParams.get("keys") ?? "").split(",").filter(Boolean);
      const version = url.searchParams.get("version") ?? "";
      if (keys.length === 0 || version === "") throw new CacheError("bad_request", "keys and version are required");
      const entry = await store.find(grant.scope, keys, version);
      if (!entry) {
        res.writeHead(204).end();
        return;
      }
      sendJson(res, 200, {
        cacheKey: entry.key,
        cacheVersion: entry.version,
        scope: grant.scope,
        creationTime: entry.createdAt,
        archiveLocation: `http://${req.headers.host}/${credential}/${API}artifacts/${entry.id}`,
      });
      return;
    }
    if (method === "GET" && route === "caches") {
      const found = store.list(grant.scope, url.searchParams.get("key") ?? "");
      sendJson(res, 200, {
        totalCount: found.length,
        artifactCaches: found.map((e) => ({
          cacheKey: e.key,
          cacheVersion: e.version,
          scope: grant.scope,
          creationTime: e.createdAt,
        })),
      });
      return;
    }
    if (method === "POST" && route === "caches") {
      const body = reserveSchema.parse(await readJson(req));
      const cacheId = await store.reserve({
        scope: grant.scope,
        key: body.key,
        version: body.version,
        owner: grant.id,
        ...(body.cacheSize !== undefined ? { size: body.cacheSize } : {}),
      });
      sendJson(res, 201, { cacheId });
      return;
    }
    if (method === "PATCH" && idMatch?.[1] === "caches" && id !== undefined) {
      const range = /^bytes (\d+)-(\d+)\/(\*|\d+)$/.exec(String(req.headers["content-range"] ?? ""));
      if (!range) throw new CacheError("bad_range", "Content-Range must be `bytes start-end/*`");
      await store.writeChunk(grant.scope, id, Number(range[1]), Number(range[2]), req);
      res.writeHead(204).end();
      return;
    }
    if (method === "POST" && idMatch?.[1] === "caches" && id !== undefined) {
      const body = commitSchema.parse(await readJson(req));
      await store.commit(grant.scope, id, body.size);
      res.writeHead(204).end();
      return;
    }
    if (method === "GET" && idMatch?.[1] === "artifacts" && id !== undefined) {
      const archive = store.archive(grant.scope, id);
      if (!archive) throw new CacheError("not_found", `no cache ${id}`);
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(archive.size) });
      await pipeline(createReadStream(archive.path), res);
      return;
    }
    throw new CacheError("not_found", `no such resource: ${method} ${route}`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const known = error instanceof CacheError ? error : undefined;
      const invalid = error instanceof z.ZodError;
      const status = known ? STATUS[known.code] : invalid ? 400 : 500;
      // The path holds the credential: log the route only.
      const route = (req.url ?? "").split("/").slice(2).join("/").split("?")[0];
      if (status >= 500) log.error({ err: error, method: req.method, route }, "cache request failed");
      else log.debug({ method: req.method, route, status, message: (error as Error).message }, "cache request refused");
      req.resume();
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, status, {
        message: known
          ? known.message
          : invalid
            ? `invalid request: ${error.issues[0]?.message}`
            : "cache server error",
      });
    });
  });
  // @actions/cache opens 4 upload or 8 download connections per job; past this bound a
  // connection is refused and the client retries or warns, the job goes on.
  server.maxConnections = MAX_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  log.info({ port, dir: options.dir, maxBytes: options.maxBytes, usedBytes: store.usedBytes() }, "job cache listening");

  return {
    port,
    open(scope, baseUrl) {
      const { credential, grant } = grants.issue(scope);
      return {
        url: `${baseUrl.replace(/\/?$/, "/")}${credential}/`,
        credential,
        async close() {
          grants.revoke(credential);
          await store.discardUploads((grant satisfies Grant).id);
        },
      };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) }).end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > MAX_JSON_BYTES) throw new CacheError("bad_request", `request body over ${MAX_JSON_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new CacheError("bad_request", "the request body is not JSON");
  }
}

/**
 * The server as guests reach it: at `guestHostAddress` (a QEMU guest's gateway, whose port is
 * forwarded to this server alone), in the shape the executor takes.
 */
export function guestCacheAccess(
  server: Pick<JobCacheServer, "port" | "open">,
  guestHostAddress: string,
): { open(scope: string): JobCacheOpening } {
  const baseUrl = `http://${guestHostAddress}:${server.port}/`;
  return { open: (scope) => server.open(scope, baseUrl) };
}

/**
 * Where the job cache lives unless configured: beside the host's other caches, one directory per
 * host id, since a directory serves one orchestrator at a time.
 */
export function defaultJobCacheDir(hostId: string): string {
  const root = process.env.SOLSTICE_CACHE_DIR ?? path.join(homedir(), ".cache", "solstice");
  return path.join(root, "job-cache", hostId.replace(/[^A-Za-z0-9._-]/g, "_"));
}
