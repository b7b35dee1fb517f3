import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadWorkflowFile, selectJobs, WorkflowError, WorkflowValidationError } from "../src/index.ts";

const T = { timeout: 5_000 };

const TWO_JOBS =
  "jobs:\n  build:\n    runs-on: x\n    steps: [{run: make}]\n  test:\n    runs-on: x\n    steps: [{run: make test}]\n";

describe("loadWorkflowFile and selectJobs", () => {
  it("loads a workflow file and selects all jobs or one by key", T, async () => {
    const dir = await mkdtemp(join(tmpdir(), `workflow-${randomUUID()}-`));
    try {
      const path = join(dir, "ci.yml");
      await writeFile(path, TWO_JOBS);
      const workflow = await loadWorkflowFile(path, { file: ".forgejo/workflows/ci.yml" });
      assert.equal(workflow.file, ".forgejo/workflows/ci.yml");
      assert.deepEqual(
        selectJobs(workflow).map((j) => j.key),
        ["build", "test"],
      );
      assert.deepEqual(
        selectJobs(workflow, "test").map((j) => j.key),
        ["test"],
      );
      assert.throws(
        () => selectJobs(workflow, "deploy"),
        (e: unknown) =>
          e instanceof WorkflowError &&
          e.code === "unknown_job" &&
          /`deploy`.*jobs in this file: build, test/.test(e.message),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("names the file it cannot read, and the file in validation problems", T, async () => {
    const dir = await mkdtemp(join(tmpdir(), `workflow-${randomUUID()}-`));
    try {
      await assert.rejects(
        loadWorkflowFile(join(dir, "missing.yml")),
        (e: unknown) =>
          e instanceof WorkflowError && e.code === "unreadable_workflow" && /missing\.yml/.test(e.message),
      );
      const path = join(dir, "bad.yml");
      await writeFile(path, "jobs:\n  a:\n    runs-on: x\n    services: {}\n    steps: [{run: x}]\n");
      await assert.rejects(
        loadWorkflowFile(path),
        (e: unknown) => e instanceof WorkflowValidationError && e.message.includes(`${path}:4:5: jobs.a.services:`),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
