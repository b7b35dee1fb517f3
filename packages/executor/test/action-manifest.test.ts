import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { readActionManifest } from "../src/actions/action-manifest.ts";

// The keys a composite step may have are those of GitHub's action.yml schema (actions/runner
// src/Runner.Worker/action_yaml.json, `run-step` and `uses-step`); the runner refuses any other
// with "Unexpected value '<key>'" before the job's steps run.
describe("action.yml of a composite action", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "solstice-manifest-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const read = async (steps: string) => {
    await writeFile(path.join(dir, "action.yml"), `name: c\nruns:\n  using: composite\n  steps:\n${steps}`);
    return readActionManifest(dir, "`o/c@v1`");
  };

  test("takes if, env, working-directory, shell and continue-on-error (an expression too) as GitHub's schema does", async () => {
    const manifest = await read(`    - id: a
      name: first
      if: \${{ inputs.x == 'y' }}
      run: echo hi
      shell: bash
      working-directory: sub
      env: { A: "1" }
      continue-on-error: \${{ inputs.soft == 'true' }}
    - uses: o/other@v1
      if: failure()
      with: { n: 3 }
      env: { B: b }
      continue-on-error: true
`);
    assert.equal(manifest.runs.using, "composite");
    if (manifest.runs.using !== "composite") return;
    assert.equal(manifest.runs.steps.length, 2);
    assert.deepEqual(manifest.runs.steps[1]?.with, { n: "3" });
  });

  test("refuses timeout-minutes on a composite step, naming the file's line and what to do instead", async () => {
    await assert.rejects(read("    - run: sleep 1\n      shell: sh\n      timeout-minutes: 1\n"), (error: Error) => {
      assert.equal(error.name, "ActionManifestError");
      assert.match(
        error.message,
        /^`o\/c@v1`: action\.yml line 7 \(runs\.steps\.0\.timeout-minutes\): Unexpected value 'timeout-minutes': .*set timeout-minutes on the workflow step that uses the action$/,
      );
      return true;
    });
  });

  test("refuses keys of the other kind of step, a run step without shell, and a step with neither run nor uses", async () => {
    await assert.rejects(
      read("    - run: echo\n      shell: sh\n    - uses: o/x@v1\n      shell: sh\n"),
      /line 8 \(runs\.steps\.1\.shell\): Unexpected value 'shell': a uses step of a composite action takes name, id, if, uses, continue-on-error, with, env/,
    );
    await assert.rejects(
      read("    - run: echo\n      with: { a: b }\n      shell: sh\n"),
      /line 6 \(runs\.steps\.0\.with\): Unexpected value 'with'/,
    );
    await assert.rejects(
      read("    - run: echo\n"),
      /line 5 \(runs\.steps\.0\.shell\): a run step of a composite action needs shell:/,
    );
    await assert.rejects(
      read("    - name: nothing\n"),
      /line 5 \(runs\.steps\.0\): a composite step needs run: \(with shell:\) or uses:/,
    );
  });
});
