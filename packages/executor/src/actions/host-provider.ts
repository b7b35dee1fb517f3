import { homedir } from "node:os";
import path from "node:path";
import type { Logger } from "pino";
import { ActionStore } from "./action-store.ts";
import type { ActionProvider } from "./job-actions.ts";
import { NodeRuntimeStore } from "./node-runtime.ts";

export interface HostActionProviderOptions {
  readonly log: Logger;
  /** For `uses: owner/name@ref` when a job names no actions URL. Default https://github.com. */
  readonly defaultUrl?: string;
  /** Where actions and Node runtimes are cached: `$SOLSTICE_ACTIONS_CACHE`, else `~/.cache/solstice`. */
  readonly cacheDir?: string;
  /** Bound on the cached actions, in bytes (default 1 GiB). */
  readonly maxBytes?: number;
  /** The npm registry Node runtimes come from (default https://registry.npmjs.org). */
  readonly registryUrl?: string;
}

/** The action provider of one host: one cache of actions and Node runtimes that all its jobs share. */
export function hostActionProvider(options: HostActionProviderOptions): ActionProvider {
  const root = path.resolve(
    options.cacheDir ?? process.env.SOLSTICE_ACTIONS_CACHE ?? path.join(homedir(), ".cache", "solstice"),
  );
  return {
    defaultUrl: options.defaultUrl ?? "https://github.com",
    store: new ActionStore({
      cacheDir: path.join(root, "actions"),
      log: options.log,
      ...(options.maxBytes ? { maxBytes: options.maxBytes } : {}),
    }),
    node: new NodeRuntimeStore({
      cacheDir: path.join(root, "node"),
      log: options.log,
      ...(options.registryUrl ? { registryUrl: options.registryUrl } : {}),
    }),
  };
}
