import path from "node:path";
import { build } from "esbuild";

/**
 * A JavaScript action's `dist/index.js`, bundled with esbuild from `source` the way the official
 * actions ship theirs (ncc/esbuild: one CommonJS file with its npm dependencies inside, run by the
 * runner's Node). Dependencies resolve from the test package's node_modules (@actions/artifact,
 * @actions/cache…), so a test action is built from the very libraries actions/upload-artifact,
 * download-artifact and cache are made of.
 */
export async function bundleAction(sourceFile: string): Promise<string> {
  const result = await build({
    entryPoints: [sourceFile],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    write: false,
    logLevel: "silent",
    minify: false,
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error(`esbuild produced nothing for ${sourceFile}`);
  return out.text;
}

/** An action.yml for a node20 action that runs dist/index.js, with these inputs. */
export function nodeActionManifest(name: string, inputs: Record<string, string | undefined>): string {
  const lines = Object.entries(inputs).flatMap(([input, fallback]) => [
    `  ${input}:`,
    `    required: ${fallback === undefined}`,
    ...(fallback === undefined ? [] : [`    default: ${JSON.stringify(fallback)}`]),
  ]);
  return `name: ${name}\ninputs:\n${lines.join("\n")}\nruns:\n  using: node20\n  main: dist/index.js\n`;
}

/** The cache test action (support/actions/cache-action.ts, @actions/cache inside): its files, to publish. */
export async function cacheTestAction(): Promise<Record<string, string>> {
  return {
    "action.yml": nodeActionManifest("cache", { mode: undefined, key: undefined, "restore-keys": "", path: undefined }),
    "dist/index.js": await bundleAction(path.join(import.meta.dirname, "actions/cache-action.ts")),
  };
}
