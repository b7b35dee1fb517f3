import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import type { PlannedJob } from "@solstice/workflow";
import { defaultWorkflow, NoDefaultWorkflowError } from "../src/default-workflow.ts";
import { mapLabels } from "../src/label-map.ts";

async function repoWith(files: readonly string[]): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "solstice-default-wf-"));
  for (const file of files) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), "");
  }
  return root;
}

async function chosen(files: readonly string[]): Promise<string | NoDefaultWorkflowError> {
  const root = await repoWith(files);
  try {
    return await defaultWorkflow(root);
  } catch (error) {
    if (error instanceof NoDefaultWorkflowError) return error;
    throw error;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

describe("ciadm run with no file", () => {
  it("runs .solstice/workflow.kdl before any Actions workflow", async () => {
    assert.equal(
      await chosen([".solstice/workflow.kdl", ".forgejo/workflows/ci.yml", ".github/workflows/ci.yml"]),
      ".solstice/workflow.kdl",
    );
  });

  it("without it, the one workflow of .forgejo/workflows, then .gitea/workflows, then .github/workflows", async () => {
    assert.equal(await chosen([".forgejo/workflows/ci.yml", ".github/workflows/a.yml"]), ".forgejo/workflows/ci.yml");
    assert.equal(await chosen([".gitea/workflows/ci.yaml", ".github/workflows/a.yml"]), ".gitea/workflows/ci.yaml");
    assert.equal(await chosen([".github/workflows/ci.yml", ".github/workflows/README.md"]), ".github/workflows/ci.yml");
  });

  it("asks which one when the first folder with workflows has several, and says what to type", async () => {
    const error = await chosen([".github/workflows/b.yml", ".github/workflows/a.yml"]);
    assert.ok(error instanceof NoDefaultWorkflowError);
    assert.match(error.message, /\.github\/workflows has 2 workflows \(a\.yml, b\.yml\)/);
    assert.equal(error.hint, "ciadm run .github/workflows/a.yml");
  });

  it("says where it looked when there is no workflow at all", async () => {
    const error = await chosen(["README.md"]);
    assert.ok(error instanceof NoDefaultWorkflowError);
    assert.match(error.message, /no \.solstice\/workflow\.kdl and no \.yml file in \.forgejo\/workflows/);
  });
});

describe("--map-label", () => {
  const job = (key: string, runsOn: string) => ({ key, runsOn }) as PlannedJob;

  it("runs the mapped labels on the given images, keeps the others, and names the FROMs no job uses", () => {
    const { jobs, unused } = mapLabels(
      [job("build", "illumos-stable"), job("lint", "ubuntu-22.04"), job("x", "tiny")],
      {
        "illumos-stable": "tiny",
        "ubuntu-22.04": "tiny-fast",
        "omnios-stable": "tiny",
      },
    );
    assert.deepEqual(
      jobs.map((j) => [j.key, j.runsOn]),
      [
        ["build", "tiny"],
        ["lint", "tiny-fast"],
        ["x", "tiny"],
      ],
    );
    assert.deepEqual(unused, ["omnios-stable"]);
  });
});
