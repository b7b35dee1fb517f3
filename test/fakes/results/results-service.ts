import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type http from "node:http";

// The forge's results service as actions reach it: artifacts v4 and GitHub's cache v2, both twirp
// services under /twirp/github.actions.results.api.v1.*, with signed blob URLs that take the Azure
// block-blob uploads the official libraries make and plain GETs for downloads. One implementation
// serves the fake GitHub and the fake Forgejo; what differs between them is a flavor.
//
// Built from these public sources (facts only: paths, field names, behaviour):
// - @actions/artifact 6.2.1 (npm): lib/internal/shared/artifact-twirp-client.js (POST
//   `<origin of ACTIONS_RESULTS_URL>/twirp/<service>/<method>`, JSON with proto field names, Bearer
//   ACTIONS_RUNTIME_TOKEN), lib/internal/shared/util.js (the token is a JWT whose `scp` claim holds
//   `Actions.Results:<workflow run backend id>:<job run backend id>`), upload-artifact.js,
//   blob-upload.js (BlockBlobClient.uploadStream: PUT `&comp=block&blockid=` then
//   `&comp=blocklist` with `<BlockList><Latest>id</Latest>…`), download-artifact.js and
//   find/list-artifacts.js (ListArtifacts with name_filter/id_filter, GetSignedArtifactURL, a GET
//   whose content type application/zip is unzipped).
// - @actions/cache 6.3.0 (npm): lib/generated/results/api/v1/cache.js (CreateCacheEntry,
//   FinalizeCacheEntryUpload, GetCacheEntryDownloadURL and their fields), cache.js (restoreCacheV2:
//   `matched_key` other than `key` is a restore-key hit; saveCacheV2), uploadUtils.js
//   (BlockBlobClient.uploadFile: one `x-ms-blob-type: BlockBlob` PUT up to 128 MiB),
//   downloadUtils.js (a plain GET, its Content-Length checked).
// - Forgejo routers/api/actions/artifactsv4.go (offsoc/forgejo 27fb9a0): the routes, the signed
//   `UploadArtifact`/`DownloadArtifact` URLs (sig, expires, artifactName, taskID, artifactID), a run
//   id in the request that is not the token's refused, ListArtifacts answering 404 when the run has
//   no artifact, artifacts of a run visible to every job of that run.
// - GitHub's documented cache matching (docs "Caching dependencies", "Matching a cache key"): an
//   exact key first, then the newest entry whose key starts with the key, then each restore key in
//   order, the same way; an entry is visible only in its repository and for the same version.

const ARTIFACTS = "github.actions.results.api.v1.ArtifactService";
const CACHE = "github.actions.results.api.v1.CacheService";
const BLOB_PATH = "/results-blobs/";
const SIGNED_FOR_MS = 60 * 60_000;

/** Who a runtime token belongs to: the run and job it was issued for, and the repository (cache scope). */
export interface RuntimeIdentity {
  runId: string;
  jobId: string;
  repository: string;
}

export interface FakeArtifact {
  id: number;
  runId: string;
  jobId: string;
  name: string;
  /** The zip as uploaded; undefined until finalized. */
  content?: Buffer;
  hash?: string;
  createdAt: Date;
}

export interface FakeCacheEntry {
  id: number;
  repository: string;
  key: string;
  version: string;
  content?: Buffer;
  createdAt: Date;
}

export interface ResultsServiceOptions {
  /** The URL clients reach the fake at (signed URLs are built on it). */
  baseUrl: () => string;
  /** The identity a bearer token stands for, undefined for a token the forge never issued. */
  authorize: (token: string) => RuntimeIdentity | undefined;
  /** Forgejo's artifact routes and answers, or GitHub's (with the cache service too). */
  flavor: "forgejo" | "github";
}

export interface ResultsService {
  readonly artifacts: readonly FakeArtifact[];
  readonly cacheEntries: readonly FakeCacheEntry[];
  /** Every twirp call: method and HTTP status answered. */
  readonly calls: { method: string; status: number }[];
  /** Answers the request if it is the results service's (twirp or blob); false to let the fake go on. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean;
}

class TwirpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface PendingBlob {
  target: { kind: "artifact"; artifact: FakeArtifact } | { kind: "cache"; entry: FakeCacheEntry };
  blocks: Map<string, Buffer>;
  committed?: Buffer;
}

export function createResultsService(opts: ResultsServiceOptions): ResultsService {
  const secret = randomBytes(32);
  const artifacts: FakeArtifact[] = [];
  const cacheEntries: FakeCacheEntry[] = [];
  const blobs = new Map<string, PendingBlob>();
  const calls: ResultsService["calls"] = [];
  let nextId = 1;

  const sign = (op: string, blobId: string, expires: string) =>
    createHmac("sha256", secret).update(`${op}\n${blobId}\n${expires}`).digest("base64url");
  const signedUrl = (op: "upload" | "download", blobId: string, artifactName = "") => {
    const expires = new Date(Date.now() + SIGNED_FOR_MS).toISOString();
    const sig = sign(op, blobId, expires);
    const base = opts.baseUrl();
    if (opts.flavor === "forgejo" && artifactName !== "") {
      // Forgejo's shape: the endpoint under the artifact service, the parameters it signs.
      const endpoint = op === "upload" ? "UploadArtifact" : "DownloadArtifact";
      const q = new URLSearchParams({ sig, expires, artifactName, blob: blobId });
      return `${base}/twirp/${ARTIFACTS}/${endpoint}?${q}`;
    }
    return `${base}${BLOB_PATH}${blobId}?${new URLSearchParams({ sp: op, se: expires, sig })}`;
  };
  /** The blob a signed URL names, or an HTTP status for a URL that is not (or no longer) valid. */
  const verify = (url: URL, op: "upload" | "download"): PendingBlob | number => {
    const forgejo = url.pathname.startsWith(`/twirp/${ARTIFACTS}/`);
    const blobId = forgejo ? (url.searchParams.get("blob") ?? "") : url.pathname.slice(BLOB_PATH.length);
    const expires = url.searchParams.get(forgejo ? "expires" : "se") ?? "";
    const given = Buffer.from(url.searchParams.get("sig") ?? "");
    const expected = Buffer.from(sign(op, blobId, expires));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 401;
    if (!(Date.parse(expires) > Date.now())) return 401;
    return blobs.get(blobId) ?? 404;
  };

  const identityOf = (req: http.IncomingMessage): RuntimeIdentity => {
    const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const identity = token ? opts.authorize(token) : undefined;
    if (!identity) throw new TwirpError(401, "unauthenticated", "the runtime token is not valid");
    return identity;
  };
  const sameRun = (identity: RuntimeIdentity, body: Record<string, unknown>) => {
    if (String(body.workflow_run_backend_id ?? "") !== identity.runId) {
      throw new TwirpError(400, "invalid_argument", "the run id is not the token's");
    }
  };
  const str = (body: Record<string, unknown>, name: string) => (typeof body[name] === "string" ? body[name] : "");
  /** A google.protobuf wrapper in proto JSON: the bare value (or `{value}` from lenient writers). */
  const wrapped = (value: unknown): string | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value === "object" && "value" in value) return String((value as { value: unknown }).value);
    return String(value);
  };

  const artifactMessage = (a: FakeArtifact) => ({
    workflowRunBackendId: a.runId,
    workflowJobRunBackendId: a.jobId,
    databaseId: String(a.id),
    name: a.name,
    size: String(a.content?.length ?? 0),
    createdAt: a.createdAt.toISOString(),
    ...(a.hash ? { digest: a.hash } : {}),
  });

  const artifactCall = (method: string, identity: RuntimeIdentity, body: Record<string, unknown>): unknown => {
    sameRun(identity, body);
    const finalized = artifacts.filter((a) => a.runId === identity.runId && a.content !== undefined);
    switch (method) {
      case "CreateArtifact": {
        const name = str(body, "name");
        if (name === "") throw new TwirpError(400, "invalid_argument", "name is required");
        const artifact: FakeArtifact = {
          id: nextId++,
          runId: identity.runId,
          jobId: identity.jobId,
          name,
          createdAt: new Date(),
        };
        artifacts.push(artifact);
        const blobId = randomBytes(12).toString("hex");
        blobs.set(blobId, { target: { kind: "artifact", artifact }, blocks: new Map() });
        return { ok: true, signedUploadUrl: signedUrl("upload", blobId, name) };
      }
      case "FinalizeArtifact": {
        const name = str(body, "name");
        const pending = [...blobs.values()].find(
          (b) =>
            b.target.kind === "artifact" &&
            b.target.artifact.name === name &&
            b.target.artifact.runId === identity.runId,
        );
        if (pending?.target.kind !== "artifact" || pending.committed === undefined) {
          throw new TwirpError(404, "not_found", `artifact ${name} was not uploaded`);
        }
        const size = Number(str(body, "size") || "0");
        if (size !== pending.committed.length) {
          throw new TwirpError(
            400,
            "invalid_argument",
            `size ${size} is not the ${pending.committed.length} bytes uploaded`,
          );
        }
        const artifact = pending.target.artifact;
        artifact.content = pending.committed;
        const hash = wrapped(body.hash);
        if (hash !== undefined) artifact.hash = hash;
        for (const [id, blob] of blobs) if (blob === pending) blobs.delete(id);
        return { ok: true, artifactId: String(artifact.id) };
      }
      case "ListArtifacts": {
        const nameFilter = wrapped(body.name_filter);
        const idFilter = wrapped(body.id_filter);
        const listed = finalized.filter(
          (a) =>
            (nameFilter === undefined || a.name === nameFilter) &&
            (idFilter === undefined || String(a.id) === idFilter),
        );
        if (opts.flavor === "forgejo" && finalized.length === 0) {
          throw new TwirpError(404, "not_found", "no artifacts in this run");
        }
        return { artifacts: listed.map(artifactMessage) };
      }
      case "GetSignedArtifactURL": {
        const name = str(body, "name");
        const artifact = finalized.filter((a) => a.name === name).at(-1);
        if (!artifact) throw new TwirpError(404, "not_found", `no artifact named ${name}`);
        const blobId = randomBytes(12).toString("hex");
        blobs.set(blobId, { target: { kind: "artifact", artifact }, blocks: new Map(), committed: artifact.content });
        return { signedUrl: signedUrl("download", blobId, name) };
      }
      default:
        throw new TwirpError(404, "bad_route", `no method ${method} on ${ARTIFACTS}`);
    }
  };

  const matchCache = (identity: RuntimeIdentity, keys: string[], version: string): FakeCacheEntry | undefined => {
    const visible = cacheEntries.filter(
      (e) => e.repository === identity.repository && e.version === version && e.content !== undefined,
    );
    const newest = (entries: FakeCacheEntry[]) =>
      entries.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.id - a.id)[0];
    for (const key of keys) {
      const exact = visible.find((e) => e.key === key);
      if (exact) return exact;
      const prefixed = newest(visible.filter((e) => e.key.startsWith(key)));
      if (prefixed) return prefixed;
    }
    return undefined;
  };

  const cacheCall = (method: string, identity: RuntimeIdentity, body: Record<string, unknown>): unknown => {
    const key = str(body, "key");
    const version = str(body, "version");
    switch (method) {
      case "CreateCacheEntry": {
        if (key === "" || version === "") throw new TwirpError(400, "invalid_argument", "key and version are required");
        const taken = cacheEntries.some(
          (e) => e.repository === identity.repository && e.key === key && e.version === version,
        );
        if (taken) return { ok: false, message: `a cache entry for key ${key} already exists` };
        const entry: FakeCacheEntry = {
          id: nextId++,
          repository: identity.repository,
          key,
          version,
          createdAt: new Date(),
        };
        cacheEntries.push(entry);
        const blobId = randomBytes(12).toString("hex");
        blobs.set(blobId, { target: { kind: "cache", entry }, blocks: new Map() });
        return { ok: true, signedUploadUrl: signedUrl("upload", blobId) };
      }
      case "FinalizeCacheEntryUpload": {
        const pending = [...blobs.entries()].find(
          ([, b]) =>
            b.target.kind === "cache" &&
            b.target.entry.repository === identity.repository &&
            b.target.entry.key === key &&
            b.target.entry.version === version &&
            b.target.entry.content === undefined,
        );
        if (pending?.[1].target.kind !== "cache" || pending[1].committed === undefined) {
          return { ok: false, message: `no upload for key ${key}` };
        }
        const [blobId, blob] = pending;
        const entry = pending[1].target.entry;
        const size = Number(str(body, "size_bytes") || "0");
        if (size !== blob.committed?.length) return { ok: false, message: `size ${size} is not what was uploaded` };
        entry.content = blob.committed;
        blobs.delete(blobId);
        return { ok: true, entryId: String(entry.id) };
      }
      case "GetCacheEntryDownloadURL": {
        const restoreKeys = Array.isArray(body.restore_keys) ? body.restore_keys.map(String) : [];
        const entry = matchCache(identity, [key, ...restoreKeys], version);
        if (!entry) return { ok: false };
        const blobId = randomBytes(12).toString("hex");
        blobs.set(blobId, { target: { kind: "cache", entry }, blocks: new Map(), committed: entry.content });
        return { ok: true, signedDownloadUrl: signedUrl("download", blobId), matchedKey: entry.key };
      }
      default:
        throw new TwirpError(404, "bad_route", `no method ${method} on ${CACHE}`);
    }
  };

  /** The Azure Blob operations BlockBlobClient makes: Put Block, Put Block List, Put Blob. */
  const putBlob = (blob: PendingBlob, url: URL, req: http.IncomingMessage, data: Buffer): number => {
    if (blob.target.kind === "artifact" ? blob.target.artifact.content : blob.target.entry.content) return 409;
    const comp = (url.searchParams.get("comp") ?? "").toLowerCase();
    if (comp === "block" || comp === "appendblock") {
      const id = url.searchParams.get("blockid");
      if (!id) return 400;
      blob.blocks.set(id, data);
      return 201;
    }
    if (comp === "blocklist") {
      const ids = [...data.toString("utf8").matchAll(/<(Latest|Committed|Uncommitted)>([^<]*)<\/\1>/g)].map(
        (m) => m[2] ?? "",
      );
      const parts = ids.map((id) => blob.blocks.get(id));
      if (parts.some((p) => p === undefined)) return 400;
      blob.committed = Buffer.concat(parts as Buffer[]);
      return 201;
    }
    if (comp === "" && (req.headers["x-ms-blob-type"] ?? "") === "BlockBlob") {
      blob.committed = data;
      return 201;
    }
    return 400;
  };

  const readBody = (req: http.IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve(Buffer.concat(chunks)));
      req.on("error", reject);
    });

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    const url = new URL(req.url ?? "/", "http://fake");
    const twirp = /^\/twirp\/(github\.actions\.results\.api\.v1\.(?:ArtifactService|CacheService))\/(\w+)$/.exec(
      url.pathname,
    );
    const blobUrl =
      url.pathname.startsWith(BLOB_PATH) ||
      (twirp?.[1] === ARTIFACTS && (twirp[2] === "UploadArtifact" || twirp[2] === "DownloadArtifact"));
    if (!twirp && !blobUrl) return false;
    if (twirp?.[1] === CACHE && opts.flavor !== "github") return false;
    void readBody(req).then((data) => {
      if (blobUrl) {
        const op = req.method === "GET" ? "download" : "upload";
        const blob = verify(url, op);
        if (typeof blob === "number") return void res.writeHead(blob).end();
        if (op === "download") {
          const content = blob.committed ?? Buffer.alloc(0);
          return void res
            .writeHead(200, {
              "content-type": blob.target.kind === "artifact" ? "application/zip" : "application/octet-stream",
              "content-length": String(content.length),
            })
            .end(content);
        }
        if (req.method !== "PUT") return void res.writeHead(405).end();
        return void res.writeHead(putBlob(blob, url, req, data)).end();
      }
      const [, service = "", method = ""] = twirp ?? [];
      try {
        if (req.method !== "POST") throw new TwirpError(405, "bad_route", "twirp methods are POST");
        const identity = identityOf(req);
        let body: Record<string, unknown>;
        try {
          body = JSON.parse(data.toString("utf8") || "{}") as Record<string, unknown>;
        } catch {
          throw new TwirpError(400, "malformed", "the body is not JSON");
        }
        const answer = service === ARTIFACTS ? artifactCall(method, identity, body) : cacheCall(method, identity, body);
        calls.push({ method, status: 200 });
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
      } catch (error) {
        const e = error instanceof TwirpError ? error : new TwirpError(500, "internal", String(error));
        calls.push({ method, status: e.status });
        res
          .writeHead(e.status, { "content-type": "application/json" })
          .end(JSON.stringify({ code: e.code, msg: e.message }));
      }
    });
    return true;
  };

  return { artifacts, cacheEntries, calls, handle };
}
