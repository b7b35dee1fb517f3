import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { create, JobRequestSchema } from "@solstice/protocol";
import type { ActionStore } from "../src/actions/action-store.ts";
import { type ActionProvider, resolveJobActions } from "../src/actions/job-actions.ts";
import type { NodeRuntimeStore } from "../src/actions/node-runtime.ts";

// GitHub's runner allows a job's step and 9 levels of actions under it through composite actions
// (actions/runner Constants.CompositeActionsMaxDepth = 9, counted from 0), and fails "Set up job"
// past that. The walk must count each use at its own depth, even of an action already seen.
describe("the composite depth limit, before any VM boots", () => {
  let dir: string;
  let provider: ActionProvider;
  const fetched: string[] = [];

  /** A composite `o/<name>@v1` whose only step uses `next`, or a JavaScript action when there is none. */
  async function action(name: string, next?: string): Promise<void> {
    await mkdir(path.join(dir, name), { recursive: true });
    const runs = next
      ? `runs:\n  using: composite\n  steps:\n    - uses: o/${next}@v1\n`
      : "runs:\n  using: node20\n  main: index.js\n";
    await writeFile(path.join(dir, name, "action.yml"), `name: ${name}\n${runs}`);
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "solstice-depth-"));
    // x → y → z (3 levels); a1 → … → a7 → x puts z at level 10, a0 → a1 … at level 11.
    await action("z");
    await action("y", "z");
    await action("x", "y");
    await action("a7", "x");
    for (let n = 6; n >= 0; n--) await action(`a${n}`, `a${n + 1}`);
    // The store's git fetching is not what is tested here: each action's tree is a local folder.
    const store = {
      fetch: async (source: { owner: string; name: string; ref: string }) => {
        fetched.push(source.name);
        return {
          repository: `${source.owner}/${source.name}`,
          url: `file://${dir}`,
          ref: source.ref,
          commit: "0".repeat(40),
          tree: path.join(dir, source.name),
          archive: "",
          cached: false,
        };
      },
      // A job that fails here lets the cache evict what it fetched again.
      release: () => {},
    } as unknown as ActionStore;
    provider = { store, node: {} as NodeRuntimeStore, defaultUrl: "https://forge.invalid" };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const job = (...uses: string[]) =>
    create(JobRequestSchema, {
      steps: uses.map((name, index) => ({
        index,
        name: `step ${index + 1}`,
        action: { case: "uses" as const, value: { uses: `o/${name}@v1` } },
      })),
    });

  test("10 levels pass, each action fetched once even when used again deeper", async () => {
    fetched.length = 0;
    const actions = await resolveJobActions(job("x", "a1"), provider, new AbortController().signal);
    assert.equal(actions.size, 10);
    assert.equal(new Set(fetched).size, fetched.length, "no action fetched twice");
  });

  test("an action seen first near the top is walked again when used deeper, and 11 levels are refused", async () => {
    await assert.rejects(
      resolveJobActions(job("x", "a0"), provider, new AbortController().signal),
      /^JobActionError: `o\/y@v1` step 1: actions nest more than 10 levels deep through composite actions/,
    );
  });
});
