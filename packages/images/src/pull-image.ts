import { mkdir, mkdtemp, readdir, readFile, rename, rm, unlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { withBuildLock } from "./build-lock.ts";
import { imageCacheDir } from "./cache-dir.ts";
import type { CatalogEntry, ImageSource } from "./catalog.ts";
import { digestFromChecksumFile, hashFile } from "./checksum.ts";
import { convertToQcow2, decompressFile } from "./disk-convert.ts";
import { downloadToFile, fetchText } from "./download.ts";
import { waitingProgress } from "./ensure-image.ts";
import { ImageError } from "./errors.ts";
import { catalogDiskImage, type ImageProgress, type LocalImage } from "./local-image.ts";
import { readManifest, writeManifest } from "./manifest.ts";

export interface PullImageOptions {
  /** Default: `imageCacheDir()`. */
  cacheDir?: string;
  signal?: AbortSignal;
  progress?: ImageProgress;
  log?: Logger;
  /** Give up on a download when no byte arrives for this long. Default 60 000. */
  idleTimeoutMs?: number;
  /** Longest wait for another process pulling the same image. Default 60 minutes. */
  lockWaitTimeoutMs?: number;
}

/** What `pull` records next to the manifest, for `verify` and `prune`. */
export const pullRecordFile = "pull.json";
const pullRecordSchema = z.object({
  label: z.string(),
  url: z.string(),
  algorithm: z.enum(["sha256", "sha512"]),
  sourceDigest: z.string(),
  /** sha256 of disk.qcow2 as written, so `verify` can tell a damaged cache. */
  diskSha256: z.string(),
  pulledAt: z.string(),
});
export type PullRecord = z.output<typeof pullRecordSchema>;

/** Where part files of interrupted downloads wait to be resumed. */
export const downloadsDirName = ".downloads";
const pulledDirPattern = /^(.+)-dl-([0-9a-f]{16})$/;

/**
 * Downloads a catalog image, verifies it against the vendor's checksum before anything else reads
 * it, decompresses it, converts it to qcow2 and moves it into the cache with one rename. A pull of
 * an image that is already cached with the current digest only fetches the checksum. An
 * interrupted download resumes on the next pull; a corrupt one is deleted and refused.
 */
export async function pullImage(entry: CatalogEntry, options: PullImageOptions = {}): Promise<LocalImage> {
  const source = entry.source;
  if (!source) {
    throw new ImageError("download_failed", `image "${entry.label}" has no download source; it is built locally`, {
      hint: `it is built on first use; \`ciadm images list\` shows how each image is made`,
    });
  }
  const cacheDir = resolve(options.cacheDir ?? imageCacheDir());
  const log = options.log?.child({ image: entry.label });
  options.progress?.({ phase: "checksum", detail: source.checksum.file ?? "pinned in images.yaml" });
  const expected = await expectedDigest(source, options.signal);
  const key = expected.slice(0, 16);
  const imageDir = join(cacheDir, `${entry.label}-dl-${key}`);
  const cached = await readManifest(imageDir).catch(() => undefined);
  if (cached) {
    options.progress?.({ phase: "done", detail: "already cached", fraction: 1 });
    return cached;
  }
  await mkdir(join(cacheDir, downloadsDirName), { recursive: true });
  return withBuildLock(
    join(cacheDir, `${entry.label}-dl-${key}.lock`),
    {
      waitTimeoutMs: options.lockWaitTimeoutMs ?? 60 * 60_000,
      ...(options.signal ? { signal: options.signal } : {}),
      onWait: (holder) => options.progress?.({ phase: "waiting-for-pull", detail: holder }),
      onWaiting: (wait) => options.progress?.(waitingProgress("waiting-for-pull", wait)),
    },
    async () => {
      const existing = await readManifest(imageDir).catch(() => undefined);
      if (existing) return existing;
      await rm(imageDir, { recursive: true, force: true });
      const part = join(cacheDir, downloadsDirName, `${entry.label}-${key}.part`);
      const started = Date.now();
      log?.info({ url: source.url }, "downloading image");
      await downloadToFile(source.url, part, {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.idleTimeoutMs ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
        onProgress: (received, total) =>
          options.progress?.({
            phase: "download",
            detail: `${mib(received)}${total ? ` / ${mib(total)}` : ""} MiB`,
            ...(total ? { fraction: received / total } : {}),
          }),
      });
      options.progress?.({ phase: "verify" });
      const actual = await hashFile(part, source.checksum.algorithm, options.signal);
      if (actual !== expected) {
        await unlink(part).catch(() => undefined);
        throw new ImageError(
          "checksum_mismatch",
          `${source.url} has ${source.checksum.algorithm} ${actual}, expected ${expected}; deleted, not used`,
          {
            hint: `the download was corrupt or the vendor replaced the file: \`ciadm images pull ${entry.label}\` again`,
          },
        );
      }
      const image = await install(entry, source, part, cacheDir, imageDir, actual, options);
      await unlink(part).catch(() => undefined);
      log?.info({ dir: imageDir, ms: Date.now() - started }, "image pulled");
      options.progress?.({ phase: "done", fraction: 1 });
      return image;
    },
  );
}

async function install(
  entry: CatalogEntry,
  source: ImageSource,
  part: string,
  cacheDir: string,
  imageDir: string,
  sourceDigest: string,
  options: PullImageOptions,
): Promise<LocalImage> {
  const temp = await mkdtemp(join(cacheDir, `.pull-${entry.label}-`));
  try {
    let disk = part;
    if (source.compression !== "none") {
      options.progress?.({ phase: "decompress", detail: source.compression });
      disk = join(temp, "download.img");
      await decompressFile(part, disk, source.compression, options.signal);
    }
    options.progress?.({ phase: "convert", detail: `${source.format} → qcow2` });
    const outDir = join(temp, "image");
    await mkdir(outDir);
    await convertToQcow2(
      disk,
      join(outDir, "disk.qcow2"),
      source.format,
      entry.defaults.diskGiB * 1024 ** 3,
      options.signal,
    );
    const image = catalogDiskImage(entry, {
      path: join(imageDir, "disk.qcow2"),
      format: "qcow2",
      recipeHash: `download-${sourceDigest.slice(0, 16)}`,
    });
    const record: PullRecord = {
      label: entry.label,
      url: source.url,
      algorithm: source.checksum.algorithm,
      sourceDigest,
      diskSha256: await hashFile(join(outDir, "disk.qcow2"), "sha256", options.signal),
      pulledAt: new Date().toISOString(),
    };
    await writeFile(join(outDir, pullRecordFile), `${JSON.stringify(record, null, 2)}\n`);
    await writeManifest(outDir, image);
    await rename(outDir, imageDir);
    return image;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

async function expectedDigest(source: ImageSource, signal?: AbortSignal): Promise<string> {
  const { checksum } = source;
  if (checksum.value) return checksum.value.toLowerCase();
  const file = checksum.file as string;
  const text = await fetchText(file, signal ? { signal } : {});
  const name = decodeURIComponent(new URL(source.url).pathname.split("/").at(-1) ?? "");
  return digestFromChecksumFile(text, name, checksum.algorithm, file);
}

/** The newest pulled copy of `label` in the cache, or undefined. */
export async function findPulledImage(cacheDir: string, label: string): Promise<LocalImage | undefined> {
  const pulled = (await listPulledImages(cacheDir)).filter((p) => p.label === label);
  pulled.sort((a, b) => b.record.pulledAt.localeCompare(a.record.pulledAt));
  for (const candidate of pulled) {
    const image = await readManifest(candidate.dir).catch(() => undefined);
    if (image) return image;
  }
  return undefined;
}

export interface PulledImageDir {
  label: string;
  dir: string;
  record: PullRecord;
}

/** Every pulled image directory whose record reads. */
export async function listPulledImages(cacheDir: string): Promise<PulledImageDir[]> {
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  const found: PulledImageDir[] = [];
  for (const name of names) {
    const match = pulledDirPattern.exec(name);
    if (!match?.[1]) continue;
    const dir = join(cacheDir, name);
    const record = await readFile(join(dir, pullRecordFile), "utf8")
      .then((text) => pullRecordSchema.parse(JSON.parse(text)))
      .catch(() => undefined);
    if (record) found.push({ label: match[1], dir, record });
  }
  return found;
}

function mib(bytes: number): string {
  return (bytes / 1024 ** 2).toFixed(1);
}
