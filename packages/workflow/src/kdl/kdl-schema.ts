import { NO_ARGS, type NodeShape } from "./kdl-reader.ts";

/**
 * The KDL workflow schema, node by node (documented in docs/kdl.md). Property names follow the
 * original Solstice schema (`runs_on`, with `_`).
 */
export const SHAPES = {
  workflow: { properties: ["name"], args: NO_ARGS, children: ["env", "job"] },
  env: { properties: "any", args: NO_ARGS, children: [] },
  job: {
    properties: ["id", "name", "runs_on", "timeout_minutes", "checkout"],
    args: NO_ARGS,
    children: ["runs_on", "env", "setup", "os", "step"],
  },
  /** `runs_on "a" "b"`: the multi-OS form, one job per image. */
  runsOn: {
    properties: [],
    args: { min: 1, max: 64, what: 'one or more labels, e.g. runs_on "tiny" "debian-12"' },
    children: [],
  },
  setup: { properties: ["name", "run"], args: NO_ARGS, children: [] },
  /** A job's per-image overrides: `os "label" { env …; setup run=… }`. */
  jobOs: {
    properties: [],
    args: { min: 1, max: 1, what: 'the label it applies to, e.g. os "tiny"' },
    children: ["env", "setup"],
  },
  step: { properties: ["name", "run"], args: NO_ARGS, children: ["env", "os"] },
  /** A step's per-image script: `os "label" run="…"`. */
  stepOs: {
    properties: ["run"],
    args: { min: 1, max: 1, what: 'the label it applies to, e.g. os "tiny"' },
    children: [],
  },
} as const satisfies Record<string, NodeShape>;

/** Where each node belongs, for the hint when one is written in the wrong place. */
export const HOMES: Readonly<Record<string, string>> = {
  workflow: "at the top of the file, once",
  job: "inside workflow { }",
  step: "inside job { }",
  setup: 'inside job { } or os "label" { }',
  runs_on: "inside job { }, or as its property runs_on=",
  os: "inside job { } or step { }",
  env: "inside workflow { }, job { }, step { } or os { }",
};
