import type { MatrixCombination, StrategyContext } from "./matrix.ts";

/** An environment value: plain text, or a secret the executor unseals and sets at run time. */
export type EnvValue = string | { fromSecret: string };

export type Env = Record<string, EnvValue>;

/** Values known when the workflow is planned; a context left out makes references to it an error. */
export interface PlanContexts {
  github?: Record<string, unknown>;
  runner?: Record<string, unknown>;
  vars?: Record<string, unknown>;
  inputs?: Record<string, unknown>;
  matrix?: Record<string, unknown>;
  strategy?: Record<string, unknown>;
  needs?: Record<string, unknown>;
}

interface PlannedStepCommon {
  /** Position in the job, from 0. */
  index: number;
  name: string;
  id?: string;
  /** Merged: workflow `env` < job `env` < step `env`. */
  env: Env;
  workingDirectory?: string;
  /** The `if:` as written (validated when planned), evaluated by the executor just before the step. */
  condition?: string;
  continueOnError: boolean;
  timeoutMinutes?: number;
}

export interface PlannedRunStep extends PlannedStepCommon {
  kind: "run";
  script: string;
  /** Command template with {0} where the script file goes. */
  shell: string;
}

/** The built-in replacement for `actions/checkout`. */
export interface PlannedCheckoutStep extends PlannedStepCommon {
  kind: "checkout";
  /** "owner/name"; absent for the job's own repository. */
  repository?: string;
  ref?: string;
  path?: string;
  /** 0 means full history; 1 (a shallow clone) when not given, as actions/checkout does. */
  fetchDepth: number;
  /** `submodules: true` or `recursive`; absent for none. */
  submodules?: "true" | "recursive";
  /** `clean: false`; absent means true, as actions/checkout does. */
  clean?: boolean;
  /** The secret `token:` names; absent for the job's own token. */
  tokenSecret?: string;
}

/** `uses:` a JavaScript or composite action, fetched on the host and run in the guest. */
export interface PlannedActionStep extends PlannedStepCommon {
  kind: "action";
  /** As written, e.g. `actions/setup-node@v4` or `https://code.forgejo.org/actions/cache@v4`. */
  uses: string;
  /** `with:`, as written (expressions are evaluated by the executor just before the step). */
  inputs: Record<string, EnvValue>;
}

export type PlannedStepDef = PlannedRunStep | PlannedCheckoutStep | PlannedActionStep;

export interface PlannedJob {
  /** The job's key under `jobs:`. */
  key: string;
  name: string;
  /** The one label a host must serve; see README for how a `runs-on` list is reduced to it. */
  runsOn: string;
  timeoutMinutes: number;
  continueOnError: boolean;
  /** Merged: workflow `env` < job `env`. */
  env: Env;
  needs: string[];
  ifCondition?: string;
  /** As written; evaluated after the job once step outputs exist. */
  outputs: Record<string, string>;
  steps: PlannedStepDef[];
  /**
   * The job's strategy reads the outputs of the jobs it needs, which were not known when it was
   * planned: this PlannedJob only holds its place in the graph (key, needs, if:), and the job is
   * planned, one PlannedJob per combination, once they finished (`planAfterNeeds`).
   */
  matrixFromNeeds?: true;
  /** This job's combination, when the job has a matrix (one PlannedJob per combination). */
  matrix?: MatrixCombination;
  strategy?: StrategyContext;
}

export interface Workflow {
  name: string;
  file: string;
  /** The `on:` triggers as written; not interpreted yet. */
  on: unknown;
  jobs: PlannedJob[];
  /** The contexts it was planned with; they travel with each job for run-time expressions. */
  contexts?: PlanContexts;
  /** The file's text, for planning a job whose matrix comes from its needs once they finished. */
  source?: string;
}
