import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = path.resolve(fileURLToPath(import.meta.url), "../../../..");
const committed = path.join(root, "packages/protocol/src/gen");

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((e) =>
      e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
    ),
  );
  return nested.flat().sort();
}

test("the committed protocol code is exactly what buf generates from proto/", { timeout: 60_000 }, async () => {
  const out = await mkdtemp(path.join(tmpdir(), "solstice-gen-"));
  try {
    // buf.gen.yaml writes to ../packages/protocol/src/gen relative to the output base.
    await promisify(execFile)(
      path.join(root, "node_modules/.bin/buf"),
      ["generate", "--output", path.join(out, "proto")],
      {
        cwd: path.join(root, "proto"),
        env: { ...process.env, PATH: `${path.join(root, "node_modules/.bin")}:${process.env.PATH}` },
      },
    );
    const fresh = path.join(out, "packages/protocol/src/gen");
    const names = await listFiles(committed);
    assert.deepEqual(await listFiles(fresh), names, "generated file set differs: run `corepack pnpm gen`");
    for (const name of names) {
      const [a, b] = await Promise.all([
        readFile(path.join(committed, name), "utf8"),
        readFile(path.join(fresh, name), "utf8"),
      ]);
      assert.equal(a, b, `${name} is stale: run \`corepack pnpm gen\` and commit the result`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
