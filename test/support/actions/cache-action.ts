// A test action made of @actions/cache, the library actions/cache@v4 bundles: `mode: save` saves
// `path` under `key`; `mode: restore` restores it by `key`, then by the `restore-keys` (one per
// line) as prefixes, and sets the output `matched-key` ("" on a miss).
import { appendFileSync } from "node:fs";
import * as cache from "@actions/cache";

const input = (name: string) => process.env[`INPUT_${name.toUpperCase()}`] ?? "";

async function main(): Promise<void> {
  // As in artifact-action.ts: the library uses the cache service v2 only for github.com.
  process.env.GITHUB_SERVER_URL = "https://github.com";
  if (!cache.isFeatureAvailable()) throw new Error("the cache service is not available to this action");
  const paths = [input("path")];
  if (input("mode") === "save") {
    const id = await cache.saveCache(paths, input("key"));
    if (id <= 0) throw new Error(`the cache was not saved (id ${id})`);
    console.log(`saved ${input("key")} id=${id}`);
    return;
  }
  const restoreKeys = input("restore-keys")
    .split("\n")
    .map((k) => k.trim())
    .filter((k) => k !== "");
  const matched = (await cache.restoreCache(paths, input("key"), restoreKeys)) ?? "";
  console.log(`restored ${matched === "" ? "nothing" : matched}`);
  appendFileSync(process.env.GITHUB_OUTPUT ?? "", `matched-key=${matched}\n`);
}

main().catch((error: unknown) => {
  console.log(`::error::${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
