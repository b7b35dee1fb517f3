import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { runCiadm } from "./support/ciadm.ts";
import { leftovers } from "./support/fleet.ts";

const WORKFLOW = `on:
  workflow_dispatch:
    inputs:
      greeting: { type: string, default: hello }
      loud: { type: boolean, default: false }
jobs:
  build:
    runs-on: tiny
    strategy:
      matrix:
        n: [1, 2]
    outputs:
      one: \${{ steps.calc.outputs.one }}
      two: \${{ steps.calc.outputs.two }}
      parts: \${{ steps.calc.outputs.parts }}
    steps:
      - id: calc
        run: |
          echo "leg \${{ strategy.job-index }}/\${{ strategy.job-total }} greeting=\${{ inputs.greeting }} loud=\${{ inputs.loud }} color=\${{ vars.COLOR }} event=\${{ github.event_name }}"
          if [ \${{ matrix.n }} = 1 ]; then echo "one=ten" >> "$GITHUB_OUTPUT"; else echo "two=twenty" >> "$GITHUB_OUTPUT"; fi
          if [ \${{ matrix.n }} = 2 ]; then echo 'parts=["left", "right"]' >> "$GITHUB_OUTPUT"; fi
  # A matrix made from the outputs of the job it needs, expanded once that job finished.
  report:
    needs: build
    runs-on: tiny
    strategy:
      matrix:
        part: \${{ fromJSON(needs.build.outputs.parts) }}
    env:
      FROM_BUILD: \${{ needs.build.outputs.one }}+\${{ needs.build.outputs.two }}
    steps:
      - run: echo "build=\${{ needs.build.result }} outputs=$FROM_BUILD part=\${{ matrix.part }}"
  loud-only:
    needs: build
    if: inputs.loud
    runs-on: tiny
    steps:
      - run: echo never
`;

describe("ciadm run as a graph: matrix, needs with outputs, a matrix from them, if:, inputs and vars (tiny guests, TCG)", {
  timeout: 600_000,
}, () => {
  let dir: string;
  let runDir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "solstice-graph-"));
    runDir = await mkdtemp(path.join(tmpdir(), "solstice-graph-vms-"));
    await writeFile(path.join(dir, "graph.yml"), WORKFLOW);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  test("two matrix legs side by side, then the job that needs them reads their outputs", async () => {
    const run = await runCiadm(
      [
        "run",
        "graph.yml",
        "--accelerator",
        "tcg",
        "--run-dir",
        runDir,
        "--parallel",
        "2",
        "--input",
        "greeting=hi",
        "--var",
        "COLOR=blue",
      ],
      dir,
    );
    assert.equal(run.code, 0, run.stdout + run.stderr);
    // Side by side, each line names its job.
    assert.match(run.stdout, /\[build \(1\)\] +│ leg 0\/2 greeting=hi loud=false color=blue event=workflow_dispatch/);
    assert.match(run.stdout, /\[build \(2\)\] +│ leg 1\/2 greeting=hi/);
    assert.match(run.stdout, /\[report \(left\)\] +│ build=success outputs=ten\+twenty part=left/);
    assert.match(run.stdout, /\[report \(right\)\] +│ build=success outputs=ten\+twenty part=right/);
    assert.match(run.stdout, /⊘ job loud-only skipped: if: inputs.loud is false/);
    assert.match(
      run.stdout,
      /Summary:\n\s+build \(1\)\s+succeeded[^\n]*\n(?:\s+output[^\n]*\n)*\s+build \(2\)\s+succeeded[^\n]*\n(?:\s+output[^\n]*\n)*\s+report \(left\)\s+succeeded[^\n]*\n\s+report \(right\)\s+succeeded/,
    );
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });

  test("an input the workflow does not declare is refused before any VM boots", async () => {
    const run = await runCiadm(["run", "graph.yml", "--run-dir", runDir, "--input", "colour=red"], dir);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /input `colour` is not declared; the workflow declares: greeting, loud/);
    assert.doesNotMatch(run.stdout, /━━ job/);
  });
});
