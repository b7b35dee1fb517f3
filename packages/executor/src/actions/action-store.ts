import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { lstat, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { ImageLockTimeoutError, withBuildLock } from "@solstice/images";
import type { Logger } from "pino";
import { downloadArchive, tarCommitId } from "./action-archive.ts";

/** One repository action fetched and unpacked on the host, by resolved commit. */
export interface FetchedAction {
  /** `owner/name`. */
  readonly repository: string;
  /** The clone URL it came from, without credentials. */
  readonly url: string;
  /** The ref as written (`v4`, a branch, a commit). */
  readonly ref: string;
  readonly commit: string;
  /** The repository's tree on the host. */
  readonly tree: string;
  /** The same tree as a .tar.gz, for the guest. */
  readonly archive: string;
  /** Found in the cache: nothing was downloaded. */
  readonly cached: boolean;
}

export class ActionFetchError extends Error {
  override readonly name = "ActionFetchError";
  readonly code = "action_fetch";
}

export interface ActionStoreOptions {
  /** Where fetched actions are kept, shared by all jobs of the host (e.g. ~/.cache/solstice/actions). */
  readonly cacheDir: string;
  /** Bound on the cache's size in bytes; the least recently used actions go first. Default 1 GiB. */
  readonly maxBytes?: number;
  /** Bound on one `git` command against the action's server. Default 120 s. */
  readonly gitTimeoutMs?: number;
  readonly log: Logger;
}

const COMMIT = /^[0-9a-f]{40}$/;
const DEFAULT_MAX_BYTES = 1024 ** 3;

/**
 * Fetches actions on the host with git (a forge's smart HTTP, as Forgejo's and GitHub's runners
 * can), keyed by resolved commit: a tag or branch is resolved with `ls-remote` first, so a cached
 * commit is never downloaded again, and a commit being fetched by one job is waited for by the
 * others instead of fetched twice. Git checks every object against its hash, and the fetched
 * commit must be the one the ref resolved to. A token authenticates git on the host only, through
 * its environment (never a command line); the guest gets the unpacked tree.
 */
export class ActionStore {
  private readonly inFlight = new Map<string, Promise<FetchedAction>>();
  /** Archives a running job of this host still uses, with how many jobs: never evicted. */
  private readonly held = new Map<string, number>();
  private readonly maxBytes: number;
  private readonly gitTimeoutMs: number;

  constructor(private readonly options: ActionStoreOptions) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.gitTimeoutMs = options.gitTimeoutMs ?? 120_000;
  }

  async fetch(
    source: { baseUrl: string; owner: string; name: string; ref: string; token?: string },
    signal: AbortSignal,
  ): Promise<FetchedAction> {
    const repository = `${source.owner}/${source.name}`;
    const url = `${source.baseUrl.replace(/\/+$/, "")}/${repository}`;
    const git = (args: string[], cwd?: string) => this.git(args, source.token, signal, cwd);
    const commit = COMMIT.test(source.ref) ? source.ref : await resolveRef(url, source.ref, git);
    const entry = this.entry(url, { repository, url, ref: source.ref, commit });
    return this.cachedOr(entry, () => this.download(entry, source.ref, git));
  }

  /**
   * An action the forge already resolved (GitHub's action download info): its archive is
   * downloaded with the forge's download token, checked to be of the resolved commit, unpacked and
   * cached by repository and commit like a git fetch, so the next job of this host finds it.
   */
  async fetchArchive(
    source: { repository: string; ref: string; commit: string; tarballUrl: string; token?: string },
    signal: AbortSignal,
  ): Promise<FetchedAction> {
    if (!COMMIT.test(source.commit)) {
      throw new ActionFetchError(
        `${source.repository}@${source.ref}: the forge resolved it to \`${source.commit}\`, not a commit`,
      );
    }
    // Keyed by the archive's origin and repository, so every job of the forge shares it.
    const key = `${new URL(source.tarballUrl).origin}/${source.repository}#archive`;
    const entry = this.entry(key, {
      repository: source.repository,
      url: source.tarballUrl,
      ref: source.ref,
      commit: source.commit,
    });
    return this.cachedOr(entry, () => this.downloadArchive(entry, source, signal));
  }

  private entry(
    key: string,
    action: Pick<FetchedAction, "repository" | "url" | "ref" | "commit">,
  ): Omit<FetchedAction, "cached"> {
    const dir = path.join(
      this.options.cacheDir,
      createHash("sha256").update(key).digest("hex").slice(0, 16),
      action.commit,
    );
    return { ...action, tree: dir, archive: `${dir}.tar.gz` };
  }

  /**
   * The cached entry (its use time refreshed for the LRU order), the download under way in this
   * process, or a new download under a lock file that another process sharing the cache (a
   * `ciadm run` beside the orchestrator) waits on. The entry is held until `release`.
   */
  private async cachedOr(
    entry: Omit<FetchedAction, "cached">,
    download: () => Promise<FetchedAction>,
  ): Promise<FetchedAction> {
    this.hold(entry.archive);
    try {
      const running = this.inFlight.get(entry.tree);
      if (running !== undefined) return { ...(await running), ref: entry.ref, cached: true };
      if (await exists(entry.archive)) return await this.touched(entry);
      const fetching = this.underLock(entry, download).finally(() => this.inFlight.delete(entry.tree));
      this.inFlight.set(entry.tree, fetching);
      return await fetching;
    } catch (error) {
      this.release(entry);
      throw error;
    }
  }

  private async underLock(
    entry: Omit<FetchedAction, "cached">,
    download: () => Promise<FetchedAction>,
  ): Promise<FetchedAction> {
    await mkdir(path.dirname(entry.tree), { recursive: true });
    try {
      return await withBuildLock(`${entry.tree}.lock`, { waitTimeoutMs: this.gitTimeoutMs * 3 }, async () =>
        // Another process may have finished it while this one waited.
        (await exists(entry.archive)) ? this.touched(entry) : download(),
      );
    } catch (error) {
      if (error instanceof ImageLockTimeoutError) {
        throw new ActionFetchError(`${entry.repository}@${entry.ref}: ${error.message.replace("image", "action")}`);
      }
      throw error;
    }
  }

  private async touched(entry: Omit<FetchedAction, "cached">): Promise<FetchedAction> {
    const now = new Date();
    await utimes(entry.archive, now, now).catch(() => {});
    return { ...entry, cached: true };
  }

  /** A job is done with an action it fetched: the cache may evict it again once no job holds it. */
  release(action: Pick<FetchedAction, "archive">): void {
    const count = (this.held.get(action.archive) ?? 0) - 1;
    if (count > 0) this.held.set(action.archive, count);
    else this.held.delete(action.archive);
  }

  private hold(archive: string): void {
    this.held.set(archive, (this.held.get(archive) ?? 0) + 1);
  }

  private async download(
    action: Omit<FetchedAction, "cached">,
    ref: string,
    git: (args: string[], cwd?: string) => Promise<string>,
  ): Promise<FetchedAction> {
    const dir = action.tree;
    const work = `${dir}.part-${randomUUID()}`;
    await mkdir(work, { recursive: true });
    try {
      await git(["init", "-q", "--bare", "repo.git"], work);
      const bare = path.join(work, "repo.git");
      const wanted = COMMIT.test(ref) ? ref : action.commit;
      await git(["--git-dir", bare, "fetch", "-q", "--depth=1", "--no-tags", action.url, wanted]);
      const fetched = (await git(["--git-dir", bare, "rev-parse", "FETCH_HEAD^{commit}"])).trim();
      if (fetched !== action.commit) {
        throw new ActionFetchError(`${action.url}@${ref}: the server sent commit ${fetched}, not ${action.commit}`);
      }
      await git(["--git-dir", bare, "archive", "--format=tar.gz", "-o", path.join(work, "tree.tar.gz"), fetched]);
      await mkdir(path.join(work, "tree"));
      await run("tar", ["-xzf", path.join(work, "tree.tar.gz"), "-C", path.join(work, "tree")], {
        timeout: this.gitTimeoutMs,
      });
      await rm(bare, { recursive: true, force: true });
      await this.install(action, path.join(work, "tree"), path.join(work, "tree.tar.gz"));
      this.options.log.info({ action: action.repository, ref, commit: action.commit }, "action fetched");
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    await this.pruneQuietly(action.archive);
    return { ...action, cached: false };
  }

  private async downloadArchive(
    action: Omit<FetchedAction, "cached">,
    source: { tarballUrl: string; token?: string },
    signal: AbortSignal,
  ): Promise<FetchedAction> {
    const work = `${action.tree}.part-${randomUUID()}`;
    await mkdir(path.join(work, "unpacked"), { recursive: true });
    try {
      const download = path.join(work, "download.tar.gz");
      await downloadArchive(source.tarballUrl, source.token, download, this.maxBytes, signal);
      const commit = await tarCommitId(download);
      if (commit !== action.commit) {
        throw new ActionFetchError(
          `${action.repository}@${action.ref}: the archive from ${action.url} is of commit ${commit ?? "(none recorded)"}, not the resolved ${action.commit}`,
        );
      }
      await run("tar", ["-xzf", download, "-C", path.join(work, "unpacked")], { timeout: this.gitTimeoutMs, signal });
      // A repository archive holds one folder (owner-name-sha/), as GitHub's runner expects.
      const top = await readdir(path.join(work, "unpacked"));
      if (top.length !== 1 || top[0] === undefined) {
        throw new ActionFetchError(
          `${action.repository}@${action.ref}: the archive holds ${top.length} entries, not one folder`,
        );
      }
      const tree = path.join(work, "unpacked", top[0]);
      await run("tar", ["-czf", path.join(work, "tree.tar.gz"), "-C", tree, "."], {
        timeout: this.gitTimeoutMs,
        signal,
      });
      await this.install(action, tree, path.join(work, "tree.tar.gz"));
      this.options.log.info(
        { action: action.repository, ref: action.ref, commit: action.commit },
        "action archive downloaded",
      );
    } catch (error) {
      if (error instanceof ActionFetchError) throw error;
      throw new ActionFetchError(`${action.repository}@${action.ref}: ${(error as Error).message}`);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    await this.pruneQuietly(action.archive);
    return { ...action, cached: false };
  }

  /** Moves a finished tree and its archive into the cache; the archive last, as it marks the entry complete. */
  private async install(action: Omit<FetchedAction, "cached">, tree: string, archive: string): Promise<void> {
    // What the entry takes on disk, measured once here, so the bound never walks every tree.
    const bytes = (await treeBytes(tree)) + (await stat(archive)).size;
    await rm(action.tree, { recursive: true, force: true });
    await mkdir(path.dirname(action.tree), { recursive: true });
    await rename(tree, action.tree);
    await writeFile(`${action.tree}.bytes`, `${bytes}\n`);
    await rename(archive, action.archive);
  }

  private async pruneQuietly(keep: string): Promise<void> {
    await this.prune(keep).catch((error: unknown) =>
      this.options.log.warn({ err: error }, "pruning the action cache failed"),
    );
  }

  /** Removes the least recently used actions until the cache fits `maxBytes`; never `keep` nor one a job holds. */
  private async prune(keep: string): Promise<void> {
    const entries: { archive: string; size: number; used: number }[] = [];
    for (const repo of await readdir(this.options.cacheDir).catch(() => [] as string[])) {
      const repoDir = path.join(this.options.cacheDir, repo);
      for (const name of await readdir(repoDir).catch(() => [] as string[])) {
        if (!name.endsWith(".tar.gz")) continue;
        const archive = path.join(repoDir, name);
        const info = await stat(archive);
        const tree = archive.slice(0, -".tar.gz".length);
        const measured = Number((await readFile(`${tree}.bytes`, "utf8").catch(() => "")).trim());
        // An entry from before sizes were recorded: its tree counted as four times its archive.
        entries.push({ archive, size: measured > 0 ? measured : info.size * 5, used: info.mtimeMs });
      }
    }
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    for (const entry of entries.sort((a, b) => a.used - b.used)) {
      if (total <= this.maxBytes) break;
      if (entry.archive === keep || this.held.has(entry.archive)) continue;
      const tree = entry.archive.slice(0, -".tar.gz".length);
      await rm(entry.archive, { force: true });
      await rm(tree, { recursive: true, force: true });
      await rm(`${tree}.bytes`, { force: true });
      total -= entry.size;
    }
  }

  private git(args: string[], token: string | undefined, signal: AbortSignal, cwd?: string): Promise<string> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      GIT_TERMINAL_PROMPT: "0",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_PROTOCOL: "version=2",
    };
    if (token) {
      const basic = Buffer.from(`x-access-token:${token}`).toString("base64");
      Object.assign(env, {
        GIT_CONFIG_COUNT: "1",
        GIT_CONFIG_KEY_0: "http.extraHeader",
        GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
      });
    }
    return run("git", args, { env, signal, timeout: this.gitTimeoutMs, ...(cwd ? { cwd } : {}) });
  }
}

/** The commit a tag or branch names: a tag's peeled commit first, then the tag, then a branch. */
async function resolveRef(url: string, ref: string, git: (args: string[]) => Promise<string>): Promise<string> {
  const out = await git(["ls-remote", "--", url, `refs/tags/${ref}`, `refs/tags/${ref}^{}`, `refs/heads/${ref}`]);
  const refs = new Map(
    out
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [sha = "", name = ""] = line.split("\t");
        return [name, sha] as const;
      }),
  );
  const commit = refs.get(`refs/tags/${ref}^{}`) ?? refs.get(`refs/tags/${ref}`) ?? refs.get(`refs/heads/${ref}`);
  if (commit === undefined) {
    throw new ActionFetchError(`${url} has no tag or branch \`${ref}\` (write a tag, a branch or a full commit)`);
  }
  return commit;
}

function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; signal?: AbortSignal; timeout: number; cwd?: string },
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { ...options, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) {
        resolve(stdout);
        return;
      }
      // The URL is in the arguments, never a token (that is in the environment only).
      const why = stderr.trim().split("\n").slice(-3).join("; ") || error.message;
      reject(new ActionFetchError(`${command} ${args.filter((a) => !a.startsWith("-")).join(" ")}: ${why}`));
    });
  });
}

/** The bytes of every file under `dir` (links counted as themselves). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? await treeBytes(full) : (await lstat(full)).size;
  }
  return total;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
