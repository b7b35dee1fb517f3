import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { createPgJobStore, migrate } from "@solstice/db";
import { pino } from "pino";
import { projectRoot, runCiadm } from "./support/ciadm.ts";
import { DATABASE_URL, dropSchema } from "./support/fleet.ts";

test("ciadm db migrate applies the schema once and then reports it up to date", { timeout: 60_000 }, async () => {
  const schema = `test_${randomUUID().slice(0, 8)}`;
  try {
    const first = await runCiadm(["db", "migrate", "--database-url", DATABASE_URL, "--schema", schema], projectRoot);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /applied \d+ migration/);
    const second = await runCiadm(["db", "migrate", "--database-url", DATABASE_URL, "--schema", schema], projectRoot);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /schema is up to date/);
  } finally {
    await dropSchema(schema);
  }
});

test("ciadm db migrate without a database says how to name one", { timeout: 30_000 }, async () => {
  const run = await runCiadm(["db", "migrate"], projectRoot, { SOLSTICE_DATABASE_URL: "" });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--database-url or set SOLSTICE_DATABASE_URL/);
});

test("ciadm db prune --older-than deletes finished jobs older than that, with their steps, and says how many", {
  timeout: 60_000,
}, async () => {
  const schema = `test_${randomUUID().slice(0, 8)}`;
  const log = pino({ level: "silent" });
  await migrate({ databaseUrl: DATABASE_URL, schema, log });
  const { store, close } = createPgJobStore({ databaseUrl: DATABASE_URL, schema, log });
  try {
    const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000);
    const job = (id: string) => ({
      jobId: id,
      attempt: 1,
      source: "manual" as const,
      owner: "runner-a",
      label: "tiny",
      repoUrl: "",
      repoFullName: "acme/widget",
      commitSha: "",
      ref: "",
      workflowPath: "ci.yml",
      jobKey: "build",
      jobName: "build",
      steps: [{ index: 0, name: "make" }],
    });
    const [old, oldRunning, recent] = [randomUUID(), randomUUID(), randomUUID()];
    for (const [id, days] of [
      [old, 40],
      [oldRunning, 40],
      [recent, 2],
    ] as const) {
      await store.recordQueued(job(id), daysAgo(days));
      await store.markRunning(id, 1, "host-1", daysAgo(days));
    }
    await store.finishJob(old, 1, { state: "succeeded" }, daysAgo(40));
    await store.finishJob(recent, 1, { state: "succeeded" }, daysAgo(2));

    const run = await runCiadm(
      ["db", "prune", "--older-than", "30d", "--database-url", DATABASE_URL, "--schema", schema, "--json"],
      projectRoot,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).deleted, 1);
    assert.equal(await store.getJob(old), undefined);
    assert.equal((await store.getJob(oldRunning))?.state, "running", "a running job stays however old");
    assert.equal((await store.getJob(recent))?.state, "succeeded");

    const bad = await runCiadm(["db", "prune", "--older-than", "a month", "--database-url", DATABASE_URL], projectRoot);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /use a number and m, h or d/);
  } finally {
    await close();
    await dropSchema(schema);
  }
});
