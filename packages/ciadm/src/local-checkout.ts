import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { LocalCheckoutSource } from "@solstice/executor";

const run = promisify(execFile);

export interface LocalRepository {
  readonly root: string;
  readonly commitSha: string;
  readonly ref: string;
  readonly fullName: string;
  readonly url: string;
  readonly checkout: LocalCheckoutSource;
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run("git", args, { cwd, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** The top of the git work tree `dir` is in; undefined outside one. */
export async function repositoryRoot(dir: string): Promise<string | undefined> {
  return git(dir, "rev-parse", "--show-toplevel").catch(() => undefined);
}

/**
 * The developer's repository as a local run checks it out: HEAD, or with `includeUncommitted` a
 * commit of the tracked changes too (`git stash create` makes it without touching the working
 * tree or the stash). It is packed into a git bundle under a temporary ref that is deleted again
 * at once, so the user's refs are left as they were.
 */
export async function readLocalRepository(
  dir: string,
  options: { includeUncommitted: boolean },
): Promise<LocalRepository> {
  const root = await git(dir, "rev-parse", "--show-toplevel").catch(() => {
    throw new Error(`${dir} is not inside a git repository; a local run checks out the repository's current commit`);
  });
  const head = await git(root, "rev-parse", "HEAD").catch(() => {
    throw new Error(`the repository at ${root} has no commits yet; commit once so checkout has something to check out`);
  });
  const commitSha = (options.includeUncommitted && (await git(root, "stash", "create"))) || head;
  const ref = (await git(root, "symbolic-ref", "-q", "HEAD").catch(() => "")) || commitSha;
  const url = await git(root, "remote", "get-url", "origin").catch(() => "");
  const fullName = url
    ? url
        .replace(/\.git$/, "")
        .split(/[/:]/)
        .slice(-2)
        .join("/")
    : `local/${path.basename(root)}`;

  const bundleRef = `refs/solstice/local-run-${process.pid}`;
  const work = await mkdtemp(path.join(tmpdir(), "solstice-bundle-"));
  try {
    await git(root, "update-ref", bundleRef, commitSha);
    const bundlePath = path.join(work, "checkout.bundle");
    await git(root, "bundle", "create", "--quiet", bundlePath, bundleRef);
    const bundle = await readFile(bundlePath);
    return { root, commitSha, ref, fullName, url, checkout: { bundle, ref: bundleRef, commit: commitSha } };
  } finally {
    await git(root, "update-ref", "-d", bundleRef).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  }
}
