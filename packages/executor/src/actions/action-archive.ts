import { createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";

/** Why an action archive was refused; never carries the token. */
export class ActionArchiveError extends Error {
  override readonly name = "ActionArchiveError";
  readonly code = "action_archive";
}

/**
 * Downloads a repository archive (GitHub's `tarball_url`) to `file`, authenticated as GitHub's
 * runner does (`Authorization: Basic base64("x-access-token:" + token)`), stopping at `maxBytes`.
 * Redirects are followed; fetch drops the Authorization header when one leaves the origin, and
 * GitHub's codeload redirect carries its own signature.
 */
export async function downloadArchive(
  url: string,
  token: string | undefined,
  file: string,
  maxBytes: number,
  signal: AbortSignal,
): Promise<void> {
  const headers: Record<string, string> = { Accept: "application/octet-stream", "User-Agent": "solstice-ci" };
  if (token) headers.Authorization = `Basic ${Buffer.from(`x-access-token:${token}`).toString("base64")}`;
  let response: Response;
  try {
    response = await fetch(url, { headers, redirect: "follow", signal });
  } catch (error) {
    throw new ActionArchiveError(`downloading ${url}: ${(error as Error).message}`);
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel().catch(() => {});
    const hint =
      response.status === 401 || response.status === 403 || response.status === 404
        ? " (the download token was refused or has expired, or the repository is private to another owner)"
        : "";
    throw new ActionArchiveError(`downloading ${url}: HTTP ${response.status}${hint}`);
  }
  let size = 0;
  const bound = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > maxBytes)
        done(new ActionArchiveError(`${url} is larger than the ${maxBytes}-byte bound on one action`));
      else done(null, chunk);
    },
  });
  await pipeline(
    Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>),
    bound,
    createWriteStream(file),
    { signal },
  );
}

/**
 * The commit a `git archive` tarball was made from: git writes it as the `comment` of a pax
 * global header in the first record (what `git get-tar-commit-id` reads), and GitHub's tarballs
 * are made by git archive. Undefined when the archive has no such header.
 */
export async function tarCommitId(file: string): Promise<string | undefined> {
  const handle = await open(file);
  const head: Buffer[] = [];
  let length = 0;
  try {
    const gunzip = createGunzip();
    const reading = handle.createReadStream();
    await new Promise<void>((resolve, reject) => {
      gunzip.on("data", (chunk: Buffer) => {
        head.push(chunk);
        length += chunk.length;
        // The header record and its content fit in the first three records.
        if (length >= 1536) {
          reading.destroy();
          gunzip.destroy();
          resolve();
        }
      });
      gunzip.on("end", resolve);
      gunzip.on("error", (error) => reject(new ActionArchiveError(`the archive is not gzip: ${error.message}`)));
      reading.on("error", reject);
      reading.pipe(gunzip);
    });
  } finally {
    await handle.close();
  }
  const tar = Buffer.concat(head);
  // ustar header: typeflag at byte 156, the content after the 512-byte header.
  if (tar.length < 1024 || tar[156] !== "g".charCodeAt(0)) return undefined;
  const sizeField = tar.subarray(124, 136).toString("latin1").replace(/\0.*$/, "").trim();
  const content = tar.subarray(512, 512 + Number.parseInt(sizeField, 8)).toString("utf8");
  // pax records are "<length> <key>=<value>\n".
  for (const record of content.split("\n")) {
    const match = /^\d+ comment=([0-9a-f]{40})$/.exec(record);
    if (match) return match[1];
  }
  return undefined;
}
