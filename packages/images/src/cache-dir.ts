import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** Where built images live: `$SOLSTICE_IMAGE_CACHE`, else `~/.cache/solstice/images`. */
export function imageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.SOLSTICE_IMAGE_CACHE;
  return fromEnv ? resolve(fromEnv) : join(homedir(), ".cache", "solstice", "images");
}
