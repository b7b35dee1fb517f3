import { resolve } from "node:path";
import { imageCacheDir } from "./cache-dir.ts";
import {
  type BootSettings,
  type CatalogEntry,
  findCatalogEntry,
  type ImageCatalog,
  loadImageCatalog,
} from "./catalog.ts";
import { type EnsureImageOptions, ensureLocalImage } from "./ensure-image.ts";
import { ImageError } from "./errors.ts";
import type { LocalImage } from "./local-image.ts";
import { findPulledImage, type PullImageOptions, pullImage } from "./pull-image.ts";

export interface EnsureCatalogImageOptions extends EnsureImageOptions, Pick<PullImageOptions, "idleTimeoutMs"> {
  /** Default: `loadImageCatalog()` (images.yaml, or `$SOLSTICE_IMAGE_CATALOG`). */
  catalog?: ImageCatalog;
}

/**
 * The image for a `runs-on` label, as images.yaml says: a pulled copy in the cache, else a
 * download, else the local build. When the catalog prefers the build (or has no source) it is
 * built; when a download fails for want of a network and the entry has a build, the build is
 * used instead. A checksum mismatch never falls back: it is reported.
 */
export async function ensureImage(label: string, options: EnsureCatalogImageOptions = {}): Promise<LocalImage> {
  const catalog = options.catalog ?? (await loadImageCatalog());
  const entry = findCatalogEntry(catalog, label);
  const image = await ensureEntryImage(entry, options);
  return entry.node ? { ...image, node: entry.node } : image;
}

async function ensureEntryImage(entry: CatalogEntry, options: EnsureCatalogImageOptions): Promise<LocalImage> {
  const cacheDir = resolve(options.cacheDir ?? imageCacheDir());
  const build = entry.build;
  if (entry.prefer === "build" && build)
    return withBootSettings(await ensureLocalImage(build, { ...options, cacheDir }), entry.boot);
  const pulled = await findPulledImage(cacheDir, entry.label);
  if (pulled) return pulled;
  try {
    return await pullImage(entry, { ...options, cacheDir });
  } catch (error) {
    if (!build || !(error instanceof ImageError) || error.code !== "download_failed") throw error;
    options.log?.warn({ image: entry.label, err: error }, "download failed; building the image locally instead");
    return withBootSettings(await ensureLocalImage(build, { ...options, cacheDir }), entry.boot);
  }
}

/**
 * A built image booted the way its catalog entry says: the recipe describes what it built, the
 * catalog chooses the boot path (machine, kernel entry, arguments, key delivery, snapshots).
 */
export function withBootSettings(image: LocalImage, boot: BootSettings): LocalImage {
  return {
    ...image,
    machine: boot.machine,
    seedMedium: boot.seedMedium,
    readiness: boot.readiness,
    sshUser: boot.sshUser,
    ...(boot.kernel ? { kernelEntry: boot.kernel } : {}),
    ...(boot.kernelArgs ? { kernelArgs: boot.kernelArgs } : {}),
    ...(boot.keys ? { keys: boot.keys } : {}),
    ...(boot.snapshot !== undefined ? { snapshot: boot.snapshot } : {}),
  };
}
