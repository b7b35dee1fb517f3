export { type BuildLockOptions, withBuildLock } from "./build-lock.ts";
export { imageCacheDir } from "./cache-dir.ts";
export type { BootSettings, CatalogEntry, ImageCatalog, ImageSource } from "./catalog.ts";
export {
  defaultCatalogPath,
  findCatalogEntry,
  imageCatalogSchema,
  loadImageCatalog,
  parseImageCatalog,
} from "./catalog.ts";
export type { EnsureCatalogImageOptions } from "./ensure-catalog-image.ts";
export { ensureImage, withBootSettings } from "./ensure-catalog-image.ts";
export type { EnsureImageOptions } from "./ensure-image.ts";
export { ensureLocalImage } from "./ensure-image.ts";
export type { ImageErrorCode } from "./errors.ts";
export { ImageBuildError, ImageError, ImageLockTimeoutError, UnknownImageError } from "./errors.ts";
export { type GuestArch, guestArches, hostArch } from "./guest-arch.ts";
export type { CatalogImageState, VerifyResult } from "./image-cache.ts";
export { listCatalogImages, pruneImageCache, verifyCachedImages } from "./image-cache.ts";
export { catalogDiskImage, type ImageProgress, type LocalImage } from "./local-image.ts";
export type { PullImageOptions, PullRecord } from "./pull-image.ts";
export { findPulledImage, pullImage } from "./pull-image.ts";
export { knownImageLabels } from "./recipes.ts";
