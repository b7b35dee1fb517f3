import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const packageDir = new URL("..", import.meta.url).pathname;
const migrationsDir = join(packageDir, "drizzle");
const drizzleKit = join(packageDir, "node_modules", ".bin", "drizzle-kit");

test("the committed migrations match schema.ts (run `pnpm --filter @solstice/db generate` after editing it)", {
  timeout: 60_000,
}, async () => {
  const scratch = await mkdtemp(join(tmpdir(), "solstice-db-generate-"));
  try {
    await cp(migrationsDir, join(scratch, "drizzle"), { recursive: true });
    // drizzle-kit resolves --schema and --out against the working directory, so both are relative.
    await promisify(execFile)(
      drizzleKit,
      [
        "generate",
        "--dialect",
        "postgresql",
        "--schema",
        relative(scratch, join(packageDir, "src", "schema.ts")),
        "--out",
        "drizzle",
      ],
      { cwd: scratch, timeout: 50_000 },
    );
    const committed = (await readdir(migrationsDir)).sort();
    const regenerated = (await readdir(join(scratch, "drizzle"))).sort();
    assert.deepEqual(regenerated, committed, "schema.ts has changes that no committed migration contains");
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});

test("no committed migration names the public schema, so migrations apply to any schema", {
  timeout: 10_000,
}, async () => {
  for (const name of await readdir(migrationsDir)) {
    if (!name.endsWith(".sql")) continue;
    const text = await readFile(join(migrationsDir, name), "utf8");
    assert.doesNotMatch(text, /"public"\./, `${name} names "public"; run scripts/strip-public-schema.ts`);
  }
});
