import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { publishRepository } from "./git-repository.ts";

const run = promisify(execFile);

/**
 * A forge's git over smart HTTP on loopback, for action fetching: Node's http in front of
 * `git http-backend` (CGI). With `token`, every request must carry it as HTTP basic auth, as a
 * forge asks for a private repository. Counts the pack downloads (`git-upload-pack` POSTs) per
 * repository, so a test can see that a cached action is not fetched again.
 */
export interface GitHttpServer {
  readonly url: string;
  readonly root: string;
  /** Creates `owner/name` with `files`, commits them and tags the commit with each of `tags`. */
  publish(repository: string, files: Record<string, string>, tags: string[]): Promise<string>;
  packFetches(repository: string): number;
  close(): Promise<void>;
}

export async function startGitHttpServer(options: { token?: string } = {}): Promise<GitHttpServer> {
  const root = await mkdtemp(path.join(tmpdir(), "solstice-git-http-"));
  const fetches = new Map<string, number>();
  const backend = (await run("git", ["--exec-path"])).stdout.trim();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (options.token) {
      const expected = `Basic ${Buffer.from(`x-access-token:${options.token}`).toString("base64")}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"' }).end();
        return;
      }
    }
    if (req.method === "POST" && url.pathname.endsWith("/git-upload-pack")) {
      // Protocol v2 asks for refs and for a pack with separate POSTs: only the latter downloads.
      const repo = url.pathname.split("/").slice(1, 3).join("/");
      let counted = false;
      req.on("data", (chunk: Buffer) => {
        if (!counted && chunk.includes("command=fetch")) {
          counted = true;
          fetches.set(repo, (fetches.get(repo) ?? 0) + 1);
        }
      });
    }
    // A forge serves owner/name and owner/name.git alike.
    const pathInfo = url.pathname.replace(/^\/([^/]+)\/([^/]+?)(\.git)?\//, "/$1/$2.git/");
    const cgi = spawn(path.join(backend, "git-http-backend"), [], {
      env: {
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: pathInfo,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? "GET",
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
        REMOTE_ADDR: "127.0.0.1",
      },
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on("data", (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString().split("\r\n")) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.on("close", () => res.end());
    cgi.on("error", () => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    root,
    publish: (repository, files, tags) => publishRepository(root, repository, files, tags),
    packFetches: (repository) => fetches.get(repository) ?? 0,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(root, { recursive: true, force: true });
    },
  };
}
