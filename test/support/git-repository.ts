import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Makes `dir` a git repository on branch `main`. */
export async function initRepository(dir: string): Promise<void> {
  await run("git", ["init", "-q", "-b", "main"], { cwd: dir });
}

/** Commits everything in the repository at `dir` as a test author. */
export async function commitAll(dir: string, message: string): Promise<void> {
  await run("git", ["add", "."], { cwd: dir });
  await run("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message], {
    cwd: dir,
  });
}

/**
 * Creates the bare repository `<root>/<owner/name>.git` holding `files` in one commit on `main`,
 * tagged with each of `tags`, as a forge would host an action. Returns the commit.
 */
export async function publishRepository(
  root: string,
  repository: string,
  files: Record<string, string>,
  tags: string[],
): Promise<string> {
  const work = await mkdtemp(path.join(tmpdir(), "solstice-action-src-"));
  try {
    for (const [file, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(work, file)), { recursive: true });
      await writeFile(path.join(work, file), content);
    }
    const git = (...args: string[]) => run("git", args, { cwd: work });
    await initRepository(work);
    await commitAll(work, "action");
    for (const tag of tags) await git("tag", tag);
    const bare = path.join(root, `${repository}.git`);
    await mkdir(path.dirname(bare), { recursive: true });
    await run("git", ["clone", "-q", "--bare", work, bare]);
    return (await git("rev-parse", "HEAD")).stdout.trim();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
