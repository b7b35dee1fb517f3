import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { parseFleetKeys } from "@solstice/protocol";
import { runCiadm } from "./support/ciadm.ts";
import { leftovers } from "./support/fleet.ts";

describe("ciadm secrets and fleet keys (embedded default, tiny guest, TCG)", { timeout: 300_000 }, () => {
  let dir: string;
  let runDir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "solstice-secrets-"));
    runDir = await mkdtemp(path.join(tmpdir(), "solstice-secrets-vms-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  test("keys generate writes a new key file with mode 0600 and never overwrites one", async () => {
    const file = path.join(dir, "fleet.keys");
    const made = await runCiadm(["keys", "generate", "--id", "k-test", "--out", file], dir);
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const keys = parseFleetKeys(await readFile(file, "utf8"));
    assert.equal(keys[0]?.id, "k-test");
    assert.equal(keys[0]?.key.length, 32);
    const again = await runCiadm(["keys", "generate", "--out", file], dir);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /EEXIST|exists/);
  });

  test("a secret value given on the command line is refused before any VM boots", async () => {
    await writeFile(path.join(dir, "noop.yml"), "jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - run: true\n");
    const run = await runCiadm(["run", "noop.yml", "--secret", "TOKEN=hunter2", "--run-dir", runDir], dir);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /--secret takes a name, not a value/);
    assert.ok(!run.stderr.includes("hunter2"));
  });

  test("secrets from the environment and a secrets file reach the steps and are masked in the output", async () => {
    const fromEnv = `env-canary-${process.pid}-q8`;
    const fromFile = `file-canary-${process.pid}-z3`;
    await writeFile(path.join(dir, "secrets.env"), `# test secrets\nFILE_SECRET=${fromFile}\n`, { mode: 0o600 });
    await writeFile(
      path.join(dir, "secrets.yml"),
      `jobs:
  s:
    runs-on: tiny
    env:
      A: \${{ secrets.ENV_SECRET }}
      B: \${{ secrets.FILE_SECRET }}
    steps:
      - run: echo "a=$A b=$B"; printf %s "$A" | base64; test \${#A} -eq ${fromEnv.length}
`,
    );
    const run = await runCiadm(
      [
        "run",
        "secrets.yml",
        "--secret",
        "ENV_SECRET",
        "--secrets-file",
        "secrets.env",
        "--accelerator",
        "tcg",
        "--run-dir",
        runDir,
        "--log-level",
        "trace",
      ],
      dir,
      { ENV_SECRET: fromEnv },
    );
    const all = run.stdout + run.stderr;
    assert.equal(run.code, 0, all);
    assert.match(run.stdout, /a=\*\*\* b=\*\*\*/);
    for (const leak of [fromEnv, fromFile, Buffer.from(fromEnv).toString("base64")]) {
      assert.ok(!all.includes(leak), `${leak} leaked`);
    }
    assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
  });
});
