export { imageCacheDir } from "./cache-dir.ts";
export type { EnsureImageOptions } from "./ensure-image.ts";
export { ensureLocalImage } from "./ensure-image.ts";
export type { ImageErrorCode } from "./errors.ts";
export { ImageBuildError, ImageError, ImageLockTimeoutError, UnknownImageError } from "./errors.ts";
export type { ImageProgress, LocalImage } from "./local-image.ts";
export { knownImageLabels } from "./recipes.ts";
