import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { z } from "zod";
import { CacheError } from "./cache-error.ts";

/** One committed cache entry: an archive of a repository's scope, found by key and version. */
export interface CacheEntry {
  readonly id: number;
  /** The repository the entry belongs to; no other repository's job can find or read it. */
  readonly scope: string;
  readonly key: string;
  /** The client's hash of the paths and compression (`@actions/cache`'s getCacheVersion). */
  readonly version: string;
  readonly size: number;
  /** sha256 of the archive, taken before the entry became visible and checked before it is served. */
  readonly sha256: string;
  readonly createdAt: string;
}

/** The entry's metadata file, written last: its presence is what makes an entry exist. */
const entryFileSchema = z.object({
  id: z.number().int().positive(),
  scope: z.string().min(1),
  key: z.string().min(1),
  version: z.string().min(1),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.string(),
});

interface Upload {
  readonly id: number;
  readonly scope: string;
  readonly key: string;
  readonly version: string;
  /** Who reserved it (a job's grant); its uploads are discarded when that job ends. */
  readonly owner: string;
  /** The size the client announced, when it did: no byte may land past it. */
  readonly declaredSize: number | undefined;
  /** Byte ranges written so far, [start, end] inclusive. */
  readonly written: [number, number][];
  /** Bytes the upload's file reaches: what it holds on disk. */
  extent: number;
  committing: boolean;
}

export interface CacheStoreOptions {
  /** The directory that holds the entries (created if missing). */
  readonly dir: string;
  /** Bound on the committed entries' bytes: past it, the least recently used entries go. */
  readonly maxBytes: number;
  readonly log: Logger;
}

/**
 * Cache entries on disk with a size bound and least-recently-used eviction.
 *
 * An upload is written to `uploads/<id>.part`; committing checks that every byte of the announced
 * size arrived, flushes the file, takes its sha256, renames it into `entries/` and then writes the
 * entry's metadata (with the checksum) by rename too. Only an entry whose metadata exists is
 * found, and its archive is checked against the checksum before each restore: a half-written,
 * truncated or altered archive is deleted instead of served. Opening the store removes uploads a
 * crash left behind and archives without metadata.
 */
export class CacheStore {
  private readonly entries = new Map<number, CacheEntry>();
  /** Last use (creation or restore) per entry id, in ms: eviction takes the smallest first. */
  private readonly lastUsed = new Map<number, number>();
  /** The latest use recorded: uses within one millisecond still count in the order they came. */
  private latestUse = 0;
  private readonly uploads = new Map<number, Upload>();
  private nextId = 1;

  private constructor(private readonly options: CacheStoreOptions) {}

  private markUsed(id: number): void {
    this.latestUse = Math.max(Date.now(), this.latestUse + 1);
    this.lastUsed.set(id, this.latestUse);
  }

  static async open(options: CacheStoreOptions): Promise<CacheStore> {
    const store = new CacheStore(options);
    await mkdir(options.dir, { recursive: true });
    await takeDirectory(options.dir);
    await store.load();
    return store;
  }

  /** Lets another process open the directory. */
  async close(): Promise<void> {
    await rm(path.join(this.options.dir, LOCK_FILE), { force: true });
  }

  private get entriesDir(): string {
    return path.join(this.options.dir, "entries");
  }

  private get uploadsDir(): string {
    return path.join(this.options.dir, "uploads");
  }

  private archivePath(id: number): string {
    return path.join(this.entriesDir, `${id}.archive`);
  }

  private metaPath(id: number): string {
    return path.join(this.entriesDir, `${id}.json`);
  }

  private partPath(id: number): string {
    return path.join(this.uploadsDir, `${id}.part`);
  }

  private async load(): Promise<void> {
    await rm(this.uploadsDir, { recursive: true, force: true });
    await mkdir(this.uploadsDir, { recursive: true });
    await mkdir(this.entriesDir, { recursive: true });
    const names = await readdir(this.entriesDir);
    const archives = new Set(names.filter((n) => n.endsWith(".archive")));
    for (const name of names) {
      if (!name.endsWith(".json")) {
        if (!name.endsWith(".archive")) await rm(path.join(this.entriesDir, name), { force: true });
        continue;
      }
      const file = path.join(this.entriesDir, name);
      const parsed = entryFileSchema.safeParse(await readJson(file));
      const archive = parsed.success ? `${parsed.data.id}.archive` : undefined;
      if (!parsed.success || !archive || !archives.has(archive)) {
        this.options.log.warn({ file }, "cache entry without a readable metadata file or archive; removed");
        await rm(file, { force: true });
        continue;
      }
      archives.delete(archive);
      const entry = parsed.data;
      const info = await stat(this.archivePath(entry.id));
      this.entries.set(entry.id, entry);
      this.lastUsed.set(entry.id, info.mtimeMs);
      this.latestUse = Math.max(this.latestUse, info.mtimeMs);
      this.nextId = Math.max(this.nextId, entry.id + 1);
    }
    // Archives whose metadata never got written: a commit cut short.
    for (const orphan of archives) await rm(path.join(this.entriesDir, orphan), { force: true });
  }

  /** Bytes held by committed entries. */
  usedBytes(): number {
    let total = 0;
    for (const entry of this.entries.values()) total += entry.size;
    return total;
  }

  /**
   * The entry `keys` restore, as GitHub matches them: for each key in order (the primary key, then
   * the restore keys), an entry with exactly that key, else the newest entry whose key starts
   * with it; only entries of `scope` with `version`. An entry whose archive fails its checksum is
   * deleted and the search goes on.
   */
  async find(scope: string, keys: readonly string[], version: string): Promise<CacheEntry | undefined> {
    for (const key of keys) {
      for (;;) {
        const candidates = [...this.entries.values()].filter((e) => e.scope === scope && e.version === version);
        const match =
          candidates.find((e) => e.key === key) ??
          candidates
            .filter((e) => e.key.startsWith(key))
            .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id - a.id)[0];
        if (!match) break;
        if (await this.intact(match)) {
          this.markUsed(match.id);
          const now = new Date();
          await utimes(this.archivePath(match.id), now, now).catch(() => undefined);
          return match;
        }
        await this.remove(match.id);
      }
    }
    return undefined;
  }

  /** Entries of `scope` whose key is `key` (any version), for the client's diagnostics on a miss. */
  list(scope: string, key: string): CacheEntry[] {
    return [...this.entries.values()].filter((e) => e.scope === scope && e.key === key);
  }

  /** The archive of an entry of `scope`, to stream to the client; undefined when there is none. */
  archive(scope: string, id: number): { path: string; size: number } | undefined {
    const entry = this.entries.get(id);
    if (!entry || entry.scope !== scope) return undefined;
    return { path: this.archivePath(id), size: entry.size };
  }

  /** Starts an upload of `key`/`version` in `scope`; refused if that entry exists or is being uploaded. */
  async reserve(request: {
    scope: string;
    key: string;
    version: string;
    size?: number;
    owner: string;
  }): Promise<number> {
    const { scope, key, version } = request;
    if (request.size !== undefined && request.size > this.options.maxBytes) {
      throw new CacheError(
        "too_large",
        `cache of ${request.size} bytes is over this host's cache size bound of ${this.options.maxBytes} bytes`,
      );
    }
    const same = (e: { scope: string; key: string; version: string }) =>
      e.scope === scope && e.key === key && e.version === version;
    if ([...this.entries.values()].some(same) || [...this.uploads.values()].some(same)) {
      throw new CacheError("exists", `a cache with key ${key} exists or is being saved; entries are never replaced`);
    }
    const id = this.nextId++;
    await writeFile(this.partPath(id), "");
    this.uploads.set(id, {
      id,
      scope,
      key,
      version,
      owner: request.owner,
      declaredSize: request.size,
      written: [],
      extent: 0,
      committing: false,
    });
    return id;
  }

  private upload(scope: string, id: number): Upload {
    const upload = this.uploads.get(id);
    if (!upload || upload.scope !== scope) throw new CacheError("not_found", `no cache upload ${id} in progress`);
    if (upload.committing) throw new CacheError("conflict", `cache upload ${id} is being committed`);
    return upload;
  }

  /** Writes bytes `start`..`end` (inclusive) of an upload from `body`, which must hold exactly that many. */
  async writeChunk(scope: string, id: number, start: number, end: number, body: Readable): Promise<void> {
    const upload = this.upload(scope, id);
    const limit = Math.min(upload.declaredSize ?? this.options.maxBytes, this.options.maxBytes);
    if (start < 0 || end < start || end >= limit) {
      throw new CacheError("bad_range", `bytes ${start}-${end} are outside the cache's ${limit} bytes`);
    }
    // Unfinished uploads together stay within the bound too, so jobs that reserve many keys and
    // never commit cannot fill the disk; past it a chunk is refused (the client warns, the job goes on).
    let pending = 0;
    for (const other of this.uploads.values()) pending += other.extent;
    if (pending - upload.extent + Math.max(upload.extent, end + 1) > this.options.maxBytes) {
      throw new CacheError(
        "too_large",
        `uploads in progress would pass the cache's bound of ${this.options.maxBytes} bytes`,
      );
    }
    upload.extent = Math.max(upload.extent, end + 1);
    let received = 0;
    const expected = end - start + 1;
    body.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received > expected) body.destroy(new CacheError("bad_range", `more than the ${expected} bytes announced`));
    });
    await pipeline(body, createWriteStream(this.partPath(id), { flags: "r+", start }));
    if (received !== expected) {
      throw new CacheError("bad_range", `received ${received} bytes for the range ${start}-${end} (${expected})`);
    }
    upload.written.push([start, end]);
  }

  /**
   * Makes an upload an entry, if every one of its `size` bytes arrived: the archive is flushed,
   * hashed and renamed into place, then its metadata; only then can it be found. Least recently
   * used entries go if the bound is passed.
   */
  async commit(scope: string, id: number, size: number): Promise<CacheEntry> {
    const upload = this.upload(scope, id);
    if (!covers(upload.written, size)) {
      throw new CacheError("incomplete", `cache upload ${id} does not hold all of its ${size} bytes`);
    }
    if (upload.declaredSize !== undefined && upload.declaredSize !== size) {
      throw new CacheError(
        "incomplete",
        `cache upload ${id} was reserved for ${upload.declaredSize} bytes, not ${size}`,
      );
    }
    upload.committing = true;
    try {
      const part = this.partPath(id);
      const handle = await open(part, "r+");
      try {
        await handle.truncate(size);
        await handle.sync();
      } finally {
        await handle.close();
      }
      const entry: CacheEntry = {
        id,
        scope,
        key: upload.key,
        version: upload.version,
        size,
        sha256: await sha256Of(part),
        createdAt: new Date().toISOString(),
      };
      await this.makeRoom(size);
      await rename(part, this.archivePath(id));
      const meta = `${this.metaPath(id)}.tmp`;
      await writeFile(meta, JSON.stringify(entry));
      await rename(meta, this.metaPath(id));
      this.entries.set(id, entry);
      this.markUsed(id);
      this.uploads.delete(id);
      this.options.log.info({ id, scope, key: entry.key, size }, "cache entry saved");
      return entry;
    } catch (error) {
      upload.committing = false;
      throw error;
    }
  }

  /** Drops the unfinished uploads `owner` reserved (its job ended). */
  async discardUploads(owner: string): Promise<void> {
    for (const upload of [...this.uploads.values()]) {
      if (upload.owner !== owner || upload.committing) continue;
      this.uploads.delete(upload.id);
      await rm(this.partPath(upload.id), { force: true });
    }
  }

  private async makeRoom(incoming: number): Promise<void> {
    let used = this.usedBytes();
    const byAge = [...this.entries.values()].sort(
      (a, b) => (this.lastUsed.get(a.id) ?? 0) - (this.lastUsed.get(b.id) ?? 0),
    );
    for (const entry of byAge) {
      if (used + incoming <= this.options.maxBytes) break;
      used -= entry.size;
      this.options.log.info(
        { id: entry.id, scope: entry.scope, key: entry.key, size: entry.size },
        "cache entry evicted",
      );
      await this.remove(entry.id);
    }
  }

  private async remove(id: number): Promise<void> {
    this.entries.delete(id);
    this.lastUsed.delete(id);
    // Metadata first: an archive without it is never found, and the next open removes it.
    await rm(this.metaPath(id), { force: true });
    await rm(this.archivePath(id), { force: true });
  }

  private async intact(entry: CacheEntry): Promise<boolean> {
    try {
      const info = await stat(this.archivePath(entry.id));
      if (info.size === entry.size && (await sha256Of(this.archivePath(entry.id))) === entry.sha256) return true;
    } catch {
      // Missing: reported below like a damaged one.
    }
    this.options.log.warn({ id: entry.id, scope: entry.scope, key: entry.key }, "cache entry damaged; removed");
    return false;
  }
}

const LOCK_FILE = "owner.pid";

/**
 * Claims `dir` for this process: two stores on one directory would delete each other's uploads
 * and hand out the same ids. A lock left by a process that is gone is taken over.
 */
async function takeDirectory(dir: string): Promise<void> {
  const lock = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lock, String(process.pid), { flag: "wx" });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number.parseInt(await readFile(lock, "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && holder !== process.pid && alive(holder)) {
      throw new CacheError(
        "conflict",
        `the job cache directory ${dir} is in use by process ${holder}; give each orchestrator its own (SOLSTICE_JOB_CACHE_DIR)`,
      );
    }
    await rm(lock, { force: true });
  }
  throw new CacheError("conflict", `could not claim the job cache directory ${dir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Whether `ranges` together cover every byte of 0..size-1. */
function covers(ranges: readonly [number, number][], size: number): boolean {
  let next = 0;
  for (const [start, end] of [...ranges].sort((a, b) => a[0] - b[0])) {
    if (start > next) return false;
    next = Math.max(next, end + 1);
  }
  return next >= size;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(file), hash);
  return hash.digest("hex");
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as unknown;
  } catch {
    return undefined;
  }
}
