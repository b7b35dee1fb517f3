import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ensureLocalImage, ImageBuildError, pruneImageCache } from "@solstice/images";
import { keepFailedBuildLogs } from "../src/failed-build-logs.ts";

const dirs: string[] = [];
async function tempDir(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `solstice-failed-build-${name}-${randomUUID()}-`));
  dirs.push(dir);
  return dir;
}
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test("a build that runs out of time keeps its whole output in failed-builds, the error says where, and prune drops an old recipe's logs", {
  timeout: 120_000,
}, async () => {
  const cacheDir = await tempDir("cache");
  // The real tiny build takes ~20 s or more here; its first progress line comes within
  // milliseconds of its start.
  const error = await ensureLocalImage("tiny", { cacheDir, buildTimeoutMs: 4_000 }).then(
    () => assert.fail("the build finished within 4 s"),
    (e: unknown) => e,
  );

  assert.ok(error instanceof ImageBuildError, String(error));
  assert.match(error.message, /took longer than 4 s/);
  const failedDir = error.logDir as string;
  assert.match(failedDir, new RegExp(`^${cacheDir}/failed-builds/tiny-[0-9a-f]{16}$`));
  assert.ok(error.message.includes(`its logs are kept in ${failedDir} (build.log)`), error.message);
  assert.ok(error.hint?.includes(join(failedDir, "build.log")), error.hint);
  const output = await readFile(join(failedDir, "build.log"), "utf8");
  assert.match(output, /^::phase downloading-packages package lists for amd64/m);

  const top = await readdir(cacheDir);
  assert.deepEqual(
    top.filter((n) => n.startsWith(".build-") || n.endsWith(".lock") || /^tiny-[0-9a-f]{16}$/.test(n)),
    [],
    "no temp dir, lock or image is left behind",
  );

  const stale = join(cacheDir, "failed-builds", "tiny-0000000000000000");
  await mkdir(stale);
  await writeFile(join(stale, "build.log"), "an old recipe's failure\n");
  assert.deepEqual(await pruneImageCache({ cacheDir, dryRun: true }), [stale]);
  await pruneImageCache({ cacheDir });
  await assert.rejects(access(stale));
  await access(join(failedDir, "build.log"));
});

test("the logs a recipe leaves at the top of its scratch directory are kept beside its output, and replace an earlier failure's", async () => {
  const cacheDir = await tempDir("cache");
  const scratch = await tempDir("scratch");
  const outputLog = join(await tempDir("temp"), "build.log");
  await writeFile(outputLog, "::phase debootstrap second stage\n");
  await writeFile(join(scratch, "console.log"), "+ ip link set eth0 up\n::stage2 failed (1)\n");
  await writeFile(join(scratch, "debootstrap.log"), "I: Retrieving InRelease\n");
  await writeFile(join(scratch, "out.tar"), "not a log");
  await mkdir(join(scratch, "rootfs"));
  await writeFile(join(scratch, "rootfs", "dpkg.log"), "deep inside the root: not the build's");

  const earlier = await keepFailedBuildLogs(cacheDir, {
    label: "x",
    hash: "1".repeat(16),
    outputLog,
    scratchDir: scratch,
  });
  await writeFile(join(earlier.dir, "stale.log"), "from an earlier failure");
  const kept = await keepFailedBuildLogs(cacheDir, {
    label: "x",
    hash: "1".repeat(16),
    outputLog,
    scratchDir: scratch,
  });

  assert.equal(kept.dir, join(cacheDir, "failed-builds", `x-${"1".repeat(16)}`));
  assert.deepEqual(kept.files.sort(), ["build.log", "console.log", "debootstrap.log"]);
  assert.deepEqual((await readdir(kept.dir)).sort(), ["build.log", "console.log", "debootstrap.log"]);
  assert.equal(await readFile(join(kept.dir, "console.log"), "utf8"), "+ ip link set eth0 up\n::stage2 failed (1)\n");
});

test("a build that failed before it wrote anything keeps an empty log folder rather than failing again", async () => {
  const cacheDir = await tempDir("cache");
  const missing = join(cacheDir, "never-made");
  const kept = await keepFailedBuildLogs(cacheDir, {
    label: "x",
    hash: "2".repeat(16),
    outputLog: join(missing, "build.log"),
    scratchDir: missing,
  });
  assert.deepEqual(kept.files, []);
  assert.deepEqual(await readdir(kept.dir), []);
});
