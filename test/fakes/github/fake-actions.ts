import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { publishRepository } from "../../support/git-repository.ts";

const run = promisify(execFile);

/** What GitHub answers for one action reference (actions/runner ActionDownloadInfo). */
export interface ResolvedAction {
  nameWithOwner: string;
  ref: string;
  resolvedNameWithOwner: string;
  resolvedSha: string;
  tarballUrl: string;
  zipballUrl: string;
  token: string;
  expiresAt: string;
}

/**
 * The action repositories of the fake GitHub: resolving `owner/name@ref` to a commit with a
 * download token scoped to that repository (an hour, as GitHub's), and serving the repository's
 * tarball as GitHub does — `git archive` of the commit under one `owner-name-<sha7>/` folder, the
 * commit id in its pax header — only to a request carrying such a token as
 * `Basic base64("x-access-token:<token>")` (actions/runner ActionManager.CreateAuthHeader).
 */
export class FakeActionRepositories {
  private readonly tokens = new Map<string, { repository: string; expiresAt: number }>();
  private readonly downloads = new Map<string, number>();

  private constructor(private readonly root: string) {}

  static async create(): Promise<FakeActionRepositories> {
    return new FakeActionRepositories(await mkdtemp(path.join(tmpdir(), "solstice-fake-github-actions-")));
  }

  publish(nameWithOwner: string, files: Record<string, string>, tags: string[]): Promise<string> {
    return publishRepository(this.root, nameWithOwner.toLowerCase(), files, tags);
  }

  /** The answer for one reference, or undefined when the repository or ref does not exist. */
  async resolve(nameWithOwner: string, ref: string, baseUrl: string): Promise<ResolvedAction | undefined> {
    const repository = nameWithOwner.toLowerCase();
    let sha: string;
    try {
      sha = (
        await run("git", ["--git-dir", this.bare(repository), "rev-parse", "--verify", "-q", `${ref}^{commit}`])
      ).stdout.trim();
    } catch {
      return undefined;
    }
    const token = `ghs_action_${randomBytes(12).toString("hex")}`;
    const expiresAt = Date.now() + 3600_000;
    this.tokens.set(token, { repository, expiresAt });
    return {
      nameWithOwner,
      ref,
      resolvedNameWithOwner: repository,
      resolvedSha: sha,
      tarballUrl: `${baseUrl}/api/v3/repos/${repository}/tarball/${sha}`,
      zipballUrl: `${baseUrl}/api/v3/repos/${repository}/zipball/${sha}`,
      token,
      expiresAt: new Date(expiresAt).toISOString(),
    };
  }

  /** The tarball, or the HTTP status that refuses it (401 without a valid token for the repository, 404). */
  async tarball(repository: string, sha: string, authorization: string): Promise<Buffer | number> {
    const basic = /^Basic (.+)$/i.exec(authorization)?.[1];
    const [user, token = ""] = basic ? Buffer.from(basic, "base64").toString("utf8").split(":") : [];
    const grant = this.tokens.get(token);
    if (user !== "x-access-token" || !grant || grant.expiresAt < Date.now() || grant.repository !== repository) {
      return 401;
    }
    if (!/^[0-9a-f]{40}$/.test(sha)) return 404;
    try {
      const prefix = `${repository.replace("/", "-")}-${sha.slice(0, 7)}/`;
      const { stdout } = await run(
        "git",
        ["--git-dir", this.bare(repository), "archive", "--format=tar.gz", `--prefix=${prefix}`, sha],
        { encoding: "buffer", maxBuffer: 64 * 1024 * 1024 },
      );
      this.downloads.set(repository, (this.downloads.get(repository) ?? 0) + 1);
      return stdout;
    } catch {
      return 404;
    }
  }

  /** How many tarballs of the repository were served. */
  downloadsOf(nameWithOwner: string): number {
    return this.downloads.get(nameWithOwner.toLowerCase()) ?? 0;
  }

  close(): Promise<void> {
    return rm(this.root, { recursive: true, force: true });
  }

  private bare(repository: string): string {
    return path.join(this.root, `${repository}.git`);
  }
}

/**
 * The repositories' tarballs on a loopback server of their own, at GitHub's path
 * (`/api/v3/repos/{owner}/{name}/tarball/{sha}`), for tests and benchmarks of the host's
 * download without the rest of the fake GitHub.
 */
export async function serveTarballs(repos: FakeActionRepositories): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const [, api, v3, reposPart, owner, name, tarball, sha] = (req.url ?? "").split("/");
    if (api !== "api" || v3 !== "v3" || reposPart !== "repos" || tarball !== "tarball") {
      res.writeHead(404).end();
      return;
    }
    repos
      .tarball(`${owner}/${name}`.toLowerCase(), sha ?? "", req.headers.authorization ?? "")
      .then((archive) => {
        if (typeof archive === "number") res.writeHead(archive).end();
        else res.writeHead(200, { "content-type": "application/x-gzip" }).end(archive);
      })
      .catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
