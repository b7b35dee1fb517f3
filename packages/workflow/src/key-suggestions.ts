import { nearestName } from "./nearest-name.ts";

/** What is wrong with a key, and what to do about it when we can say. */
export interface KeyAdvice {
  message: string;
  suggestion?: string;
}

type Level = "workflow" | "job" | "step";

// The keys of GitHub's workflow syntax at each level (docs.github.com, "Workflow syntax for GitHub
// Actions"); Forgejo and Gitea read the same keys. Knowing them tells a misplaced or unsupported key
// apart from a typo.
const GITHUB_KEYS: Readonly<Record<Level, readonly string[]>> = {
  workflow: ["name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"],
  job: [
    "name",
    "permissions",
    "needs",
    "if",
    "runs-on",
    "snapshot",
    "environment",
    "concurrency",
    "outputs",
    "env",
    "defaults",
    "steps",
    "timeout-minutes",
    "strategy",
    "continue-on-error",
    "container",
    "services",
    "uses",
    "with",
    "secrets",
  ],
  step: [
    "id",
    "if",
    "name",
    "uses",
    "run",
    "working-directory",
    "shell",
    "with",
    "env",
    "continue-on-error",
    "timeout-minutes",
  ],
};

const SUPPORTED_STEPS = "Solstice runs `run:` steps and the built-in actions/checkout";

const CONCURRENCY: KeyAdvice = {
  message: "concurrency groups are not supported: Solstice neither queues nor cancels runs by group",
  suggestion: "remove concurrency:; every run's jobs start as soon as a machine with their label is free",
};

/** GitHub keys that Solstice does not run, per level, each with what to do instead. */
const UNSUPPORTED: Readonly<Record<Level, Readonly<Record<string, KeyAdvice>>>> = {
  workflow: {
    "run-name": {
      message: "run-name is not supported: a run is named after its workflow",
      suggestion: "remove run-name:, or put the text in the workflow's name:",
    },
    concurrency: CONCURRENCY,
  },
  job: {
    uses: {
      message: `reusable workflows (job-level uses:) are not supported: ${SUPPORTED_STEPS}`,
      suggestion: "copy the called workflow's jobs into this file",
    },
    with: {
      message: "job-level with: passes inputs to a reusable workflow, which Solstice does not run",
      suggestion: "copy the called workflow's jobs into this file and put the inputs in their env:",
    },
    secrets: {
      message: "job-level secrets: passes secrets to a reusable workflow, which Solstice does not run",
      suggestion: `copy the called workflow's jobs into this file; a step reads a secret through env: (TOKEN: \${{ secrets.TOKEN }})`,
    },
    services: {
      message: "service containers are not supported: each Solstice job runs in its own VM",
      suggestion:
        "install and start the service from a run: step (e.g. `apt-get install -y postgresql && service postgresql start`), or pick a runs-on label whose image has it",
    },
    container: {
      message: "job containers are not supported: Solstice runs steps directly in a VM of the runs-on label",
      suggestion: "pick a label whose image has what you need, or install it from a run: step",
    },
    environment: {
      message: "deployment environments (their protection rules and secrets) are not supported",
      suggestion: "remove environment:; give the job the secrets it needs as the run's secrets",
    },
    concurrency: CONCURRENCY,
    snapshot: {
      message: "custom image snapshots are not supported",
      suggestion: "remove snapshot:; images are built from the recipes in images.yaml",
    },
  },
  step: {},
};

const HOME_OF: Readonly<Record<Level, string>> = {
  workflow: "at the top level of the file",
  job: "under jobs.<job_id>:",
  step: "in a step under steps:, e.g. `- run: …`",
};

/**
 * Which level a mapping is at, from its dotted path: `` is the workflow, `jobs.<id>` a job,
 * `jobs.<id>.steps[<n>]` a step; anything deeper (defaults, strategy, with…) is none of them.
 */
function levelOf(parentKey: string): Level | undefined {
  if (parentKey === "") return "workflow";
  if (/^jobs\.[^.[\]]+$/.test(parentKey)) return "job";
  if (/^jobs\.[^.[\]]+\.steps\[\d+\]$/.test(parentKey)) return "step";
  return undefined;
}

/** Advice for key `name`, found under `parentKey` where only `allowed` keys are read. */
export function adviseKey(parentKey: string, name: string, allowed: readonly string[]): KeyAdvice {
  const level = levelOf(parentKey);
  const unsupported = level === undefined ? undefined : UNSUPPORTED[level][name];
  if (unsupported !== undefined) return unsupported;
  const message = `unknown key \`${name}\`; allowed here: ${allowed.join(", ")}`;
  const nearest = nearestName(name, allowed);
  if (nearest !== undefined) return { message, suggestion: `did you mean \`${nearest}\`?` };
  if (level !== undefined) {
    const home = (["job", "step", "workflow"] as const).find((l) => l !== level && GITHUB_KEYS[l].includes(name));
    if (home !== undefined) {
      return { message, suggestion: `\`${name}\` is a ${home} key: put it ${HOME_OF[home]}, or check the indentation` };
    }
  }
  return { message };
}
