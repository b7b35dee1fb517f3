import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
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
