import { createWriteStream } from "node:fs";
import { stat, truncate } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ImageError } from "./errors.ts";

export interface DownloadOptions {
  signal?: AbortSignal;
  /** Give up when no byte arrives for this long. Default 60 000. */
  idleTimeoutMs?: number;
  /** Called as bytes arrive (at most every 250 ms) and once at the end. */
  onProgress?: (received: number, total: number | undefined) => void;
}

const defaultIdleTimeoutMs = 60_000;
const progressIntervalMs = 250;

/**
 * Downloads `url` into `partPath`. A part file left by an interrupted run is resumed with a Range
 * request; a server that answers the range with the whole file (200) restarts it from zero. The
 * caller names part files by the expected digest, so a resumed part always belongs to the same
 * content, and verifies the whole file afterwards.
 */
export async function downloadToFile(url: string, partPath: string, options: DownloadOptions = {}): Promise<number> {
  const have = await stat(partPath).then(
    (s) => s.size,
    () => 0,
  );
  const idle = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
  const idleTimeoutMs = options.idleTimeoutMs ?? defaultIdleTimeoutMs;
  let idleTimer = setTimeout(() => idle.abort(new Error("idle")), idleTimeoutMs);
  const touch = (): void => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => idle.abort(new Error("idle")), idleTimeoutMs);
  };
  const fail = (message: string, cause?: unknown): ImageError =>
    new ImageError("download_failed", `downloading ${url}: ${message}`, {
      hint: "check the host's network and the URL in images.yaml, then run the pull again (it resumes)",
      cause,
    });
  try {
    let response: Response;
    try {
      response = await fetch(url, { signal, headers: have > 0 ? { range: `bytes=${have}-` } : {} });
    } catch (error) {
      options.signal?.throwIfAborted();
      throw fail(idle.signal.aborted ? `no answer within ${idleTimeoutMs} ms` : String(error), error);
    }
    // 416: the part is already complete (or longer than the file); start over to be sure.
    if (response.status === 416) {
      await response.body?.cancel();
      await truncate(partPath, 0);
      return downloadToFile(url, partPath, options);
    }
    if (response.status !== 200 && response.status !== 206) {
      await response.body?.cancel();
      throw fail(`the server answered ${response.status} ${response.statusText}`);
    }
    if (!response.body) throw fail("the response has no body");
    const resumed = response.status === 206;
    const offset = resumed ? have : 0;
    const length = Number(response.headers.get("content-length") ?? Number.NaN);
    const total = Number.isFinite(length) ? offset + length : undefined;
    let received = offset;
    let reportedAt = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        touch();
        received += chunk.length;
        if (options.onProgress && Date.now() - reportedAt >= progressIntervalMs) {
          reportedAt = Date.now();
          options.onProgress(received, total);
        }
        done(null, chunk);
      },
    });
    try {
      await pipeline(
        Readable.fromWeb(response.body as import("node:stream/web").ReadableStream),
        counter,
        createWriteStream(partPath, { flags: resumed ? "a" : "w" }),
        { signal },
      );
    } catch (error) {
      options.signal?.throwIfAborted();
      throw fail(idle.signal.aborted ? `no data for ${idleTimeoutMs} ms` : `the transfer broke off (${error})`, error);
    }
    if (total !== undefined && received !== total) throw fail(`got ${received} of ${total} bytes`);
    options.onProgress?.(received, total ?? received);
    return received;
  } finally {
    clearTimeout(idleTimer);
  }
}

/** A small text file (a vendor checksum file), with a deadline. */
export async function fetchText(url: string, options: { signal?: AbortSignal; timeoutMs?: number } = {}) {
  const deadline = AbortSignal.timeout(options.timeoutMs ?? 30_000);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let response: Response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    options.signal?.throwIfAborted();
    throw new ImageError("download_failed", `fetching ${url}: ${deadline.aborted ? "timed out" : String(error)}`, {
      hint: "check the host's network and the checksum URL in images.yaml",
      cause: error,
    });
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new ImageError("download_failed", `fetching ${url}: the server answered ${response.status}`, {
      hint: "the vendor may have moved the file; check the checksum URL in images.yaml",
    });
  }
  const text = await response.text();
  if (text.length > 4 * 1024 * 1024) {
    throw new ImageError("download_failed", `${url} is larger than a checksum file can be (4 MiB)`);
  }
  return text;
}
