import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

// A JavaScript action made of GitHub's own cache library (@actions/cache, the code inside
// actions/cache), bundled with esbuild as actions are published. `mode: save` saves `path` under
// `key`; `mode: restore` restores it by `key` and `restore-keys` and sets the output `hit` to the
// key it restored (empty on a miss).
const ACTION_SOURCE = `
import * as cache from "@actions/cache";
import { appendFileSync } from "node:fs";
const input = (name) => (process.env["INPUT_" + name.toUpperCase()] || "").trim();
async function main() {
  const paths = [input("path")];
  if (input("mode") === "save") {
    const id = await cache.saveCache(paths, input("key"));
    if (!(id > 0)) throw new Error("nothing saved");
    console.log("saved " + input("key"));
    return;
  }
  const restoreKeys = input("restore-keys").split("\\n").map((k) => k.trim()).filter(Boolean);
  const hit = await cache.restoreCache(paths, input("key"), restoreKeys);
  console.log("restored " + (hit || "nothing"));
  appendFileSync(process.env.GITHUB_OUTPUT, "hit=" + (hit || "") + "\\n");
}
main().catch((error) => {
  console.log("::error::" + error.message);
  process.exitCode = 1;
});
`;

const ACTION_YML = `name: cache test action
inputs:
  mode: { required: true }
  path: { required: true }
  key: { required: true }
  restore-keys: { default: "" }
outputs:
  hit: { description: the key restored }
runs:
  using: node20
  main: dist/index.js
`;

/** The action's files (action.yml and its bundle), to publish on a test git server. */
export async function cacheTestAction(): Promise<Record<string, string>> {
  const bundled = await build({
    stdin: { contents: ACTION_SOURCE, resolveDir: path.dirname(fileURLToPath(import.meta.url)), loader: "js" },
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    write: false,
    logLevel: "error",
  });
  const bundle = bundled.outputFiles[0]?.text;
  if (!bundle) throw new Error("esbuild produced no bundle");
  return { "action.yml": ACTION_YML, "dist/index.js": bundle };
}
