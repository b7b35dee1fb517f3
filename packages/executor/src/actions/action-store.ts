import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";

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
    const dir = path.join(this.options.cacheDir, createHash("sha256").update(url).digest("hex").slice(0, 16), commit);
    const done = { repository, url, ref: source.ref, commit, tree: dir, archive: `${dir}.tar.gz` };
    if (await exists(done.archive)) {
      const now = new Date();
      await utimes(done.archive, now, now).catch(() => {});
      return { ...done, cached: true };
    }
    const running = this.inFlight.get(dir);
    if (running !== undefined) return { ...(await running), cached: true };
    const fetching = this.download(done, source.ref, git).finally(() => this.inFlight.delete(dir));
    this.inFlight.set(dir, fetching);
    return fetching;
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
      await rm(dir, { recursive: true, force: true });
      await rename(path.join(work, "tree"), path.join(work, "final"));
      await mkdir(path.dirname(dir), { recursive: true });
      await rename(path.join(work, "final"), dir);
      // The archive last: its presence is what marks the entry complete.
      await rename(path.join(work, "tree.tar.gz"), action.archive);
      this.options.log.info({ action: action.repository, ref, commit: action.commit }, "action fetched");
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    await this.prune(action.archive).catch((error: unknown) =>
      this.options.log.warn({ err: error }, "pruning the action cache failed"),
    );
    return { ...action, cached: false };
  }

  /** Removes the least recently used actions until the cache fits `maxBytes`; never `keep`. */
  private async prune(keep: string): Promise<void> {
    const entries: { archive: string; size: number; used: number }[] = [];
    for (const repo of await readdir(this.options.cacheDir).catch(() => [] as string[])) {
      const repoDir = path.join(this.options.cacheDir, repo);
      for (const name of await readdir(repoDir).catch(() => [] as string[])) {
        if (!name.endsWith(".tar.gz")) continue;
        const archive = path.join(repoDir, name);
        const info = await stat(archive);
        // The unpacked tree is about as big again as the archive compressed several times over;
        // counting the archive five times keeps the bound honest without walking every tree.
        entries.push({ archive, size: info.size * 5, used: info.mtimeMs });
      }
    }
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    for (const entry of entries.sort((a, b) => a.used - b.used)) {
      if (total <= this.maxBytes) break;
      if (entry.archive === keep) continue;
      await rm(entry.archive, { force: true });
      await rm(entry.archive.slice(0, -".tar.gz".length), { recursive: true, force: true });
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

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
