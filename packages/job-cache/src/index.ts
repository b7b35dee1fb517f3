export { CacheError, type CacheErrorCode } from "./cache-error.ts";
export {
  defaultJobCacheDir,
  guestCacheAccess,
  type JobCacheOpening,
  type JobCacheServer,
  type JobCacheServerOptions,
  startJobCacheServer,
} from "./cache-server.ts";
export { type CacheEntry, CacheStore, type CacheStoreOptions } from "./cache-store.ts";
