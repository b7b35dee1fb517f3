import { nearestName } from "./nearest-name.ts";

/**
 * A service of the forge that some actions need, which the job has only where its forge gives it:
 * GitHub, Forgejo and Gitea serve artifacts; `ciadm run` has none. (Caches are everywhere: GitHub
 * hosts its own, and each VM host serves one to other jobs, docs/decisions/0007.)
 */
export type ForgeService = "artifacts";

// What to do instead of an action Solstice does not run. Keyed by `owner/name` in lower case: the
// actions that need a service of the forge's runner (an artifact store), which would only fail in
// the guest when the job's forge does not provide it.
const NEEDS_SERVICE: Readonly<Record<string, { service?: ForgeService; advice: string }>> = {
  "actions/upload-artifact": {
    service: "artifacts",
    advice:
      "artifacts are stored by the forge (GitHub, Forgejo, Gitea), not by a local run: pass small values on with job outputs (needs.<job>.outputs), or upload files from a run: step to storage of your own",
  },
  "actions/download-artifact": {
    service: "artifacts",
    advice:
      "artifacts are stored by the forge (GitHub, Forgejo, Gitea), not by a local run: pass small values on with job outputs (needs.<job>.outputs), or download files from a run: step from storage of your own",
  },
  "actions/github-script": { advice: "call the forge's API with curl from a run: step" },
};

/**
 * Why an action Solstice could fetch is refused anyway, and what to do instead; undefined when it
 * runs. `services` are the forge services the job will have.
 */
export function unsupportedActionAdvice(
  action: string,
  services: ReadonlySet<ForgeService> = new Set(),
): string | undefined {
  const name = action.trim().split("@")[0]?.split("/").slice(0, 2).join("/").toLowerCase() ?? "";
  const need = NEEDS_SERVICE[name];
  if (need === undefined || (need.service !== undefined && services.has(need.service))) return undefined;
  return need.advice;
}

/** What to do instead of `uses: <action>`, for an action Solstice does not run. */
export function actionSuggestion(action: string): string {
  const uses = action.trim();
  if (uses.startsWith("./") || uses.startsWith("../")) {
    return "local actions are not run yet: publish the action in a repository and use owner/name@ref, or put the commands of its action.yml (runs.steps of a composite action) in run: steps";
  }
  if (uses.startsWith("docker://")) {
    return "Docker actions are not run (no container runtime in the job's VM is assumed): run the container's command from a run: step, in an image that has docker or podman";
  }
  return (
    NEEDS_SERVICE[uses.split("@")[0]?.split("/").slice(0, 2).join("/").toLowerCase() ?? ""]?.advice ??
    "do what the action does in a run: step instead"
  );
}

const OVER_HTTPS = `check out over HTTPS with token: \${{ secrets.NAME }}`;

// actions/checkout inputs the built-in checkout does not take (actions/checkout's action.yml).
const CHECKOUT_INPUT_ADVICE: Readonly<Record<string, string>> = {
  lfs: "run `git lfs pull` in a run: step after the checkout, in an image that has git-lfs",
  "sparse-checkout": "remove it: the built-in checkout fetches the whole tree",
  "sparse-checkout-cone-mode": "remove it: the built-in checkout fetches the whole tree",
  filter: "remove it: the built-in checkout fetches the whole tree",
  "fetch-tags": "use fetch-depth: 0 (full history, with tags), or `git fetch --tags` in a run: step",
  "persist-credentials":
    "remove it: the built-in checkout always keeps a credential helper (never the token itself) in the repository's config for later steps, as persist-credentials: true does",
  "ssh-key": OVER_HTTPS,
  "ssh-known-hosts": OVER_HTTPS,
  "ssh-strict": OVER_HTTPS,
  "ssh-user": OVER_HTTPS,
  "set-safe-directory": "remove it: the built-in checkout does not set git's safe.directory",
  "show-progress": "remove it",
  "github-server-url": "remove it: the built-in checkout clones from the forge the job came from",
};

/** What to do about an actions/checkout input that the built-in checkout does not take. */
export function checkoutInputSuggestion(input: string, supported: readonly string[]): string | undefined {
  const nearest = nearestName(input, supported);
  if (nearest !== undefined) return `did you mean \`${nearest}\`?`;
  return CHECKOUT_INPUT_ADVICE[input];
}
