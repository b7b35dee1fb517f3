import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { access, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ensureLocalImage, knownImageLabels, UnknownImageError, withBuildLock } from "@solstice/images";

const buildTimeoutMs = 180_000;
const cacheDirs: string[] = [];

async function freshCacheDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `solstice-images-${randomUUID()}-`));
  cacheDirs.push(dir);
  return dir;
}

after(async () => {
  for (const dir of cacheDirs) await rm(dir, { recursive: true, force: true });
});

/** The cache of the first test's build, reused by tests that only need a built image. */
let builtCache: string | undefined;

test("the tiny image builds from nothing into an empty cache and its manifest points at real files", {
  timeout: buildTimeoutMs,
}, async () => {
  const cacheDir = await freshCacheDir();
  const phases: string[] = [];
  const image = await ensureLocalImage("tiny", { cacheDir, progress: (e) => phases.push(e.phase) });
  builtCache = cacheDir;

  assert.equal(image.label, "tiny");
  assert.match(image.recipeHash, /^[0-9a-f]{16}$/);
  assert.ok(image.kernel, "tiny boots with -kernel");
  for (const file of [image.disk, image.kernel.path, image.kernel.initrd]) {
    assert.ok(file?.startsWith(join(cacheDir, `tiny-${image.recipeHash}`)), `${file} is in the image's directory`);
    await access(file as string);
  }
  const manifest = JSON.parse(await readFile(join(cacheDir, `tiny-${image.recipeHash}`, "image.json"), "utf8"));
  assert.deepEqual(manifest, image);
  for (const phase of ["downloading-packages", "packing", "making-disk", "done"]) {
    assert.ok(phases.includes(phase), `progress reported ${phase}`);
  }
  assert.deepEqual(
    (await readdir(cacheDir)).filter((n) => n.startsWith(".build-") || n.endsWith(".lock")),
    [],
    "no temp dir or lock is left behind",
  );
});

test("asking again for a built image returns the cached one at once, without rebuilding", {
  timeout: buildTimeoutMs,
}, async () => {
  const cacheDir = builtCache ?? (await freshCacheDir());
  const first = await ensureLocalImage("tiny", { cacheDir });
  const phases: string[] = [];
  const started = Date.now();
  const second = await ensureLocalImage("tiny", { cacheDir, progress: (e) => phases.push(e.phase) });

  assert.deepEqual(second, first);
  assert.deepEqual(phases, [], "no build phase ran");
  assert.ok(Date.now() - started < 1_000, `cache hit took ${Date.now() - started} ms`);
});

test("two processes asking for the same image at once build it only once", { timeout: buildTimeoutMs }, async () => {
  const cacheDir = await freshCacheDir();
  const script = `
    import { ensureLocalImage } from "@solstice/images";
    const phases = [];
    const image = await ensureLocalImage("tiny", { cacheDir: process.argv[1], progress: (e) => phases.push(e.phase) });
    process.stdout.write(JSON.stringify({ image, phases }));
  `;
  const runChild = () =>
    new Promise<{ image: unknown; phases: string[] }>((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, cacheDir], {
        cwd: join(import.meta.dirname, ".."),
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
      });
      child.once("error", reject);
      child.once("close", (code) =>
        code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`)),
      );
    });

  const [a, b] = await Promise.all([runChild(), runChild()]);

  assert.deepEqual(a.image, b.image);
  const builds = [a, b].filter((r) => r.phases.includes("packing")).length;
  assert.equal(builds, 1, "exactly one process built the image");
  const waited = [a, b].filter((r) => r.phases.includes("waiting-for-build")).length;
  assert.equal(waited, 1, "the other process waited for it");
});

test("a job that finds another process building the image waits as long as that build may take", {
  timeout: buildTimeoutMs,
}, async () => {
  const { recipeHash } = await ensureLocalImage("tiny", { cacheDir: builtCache ?? (await freshCacheDir()) });
  const cacheDir = await freshCacheDir();
  let release = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const holder = withBuildLock(join(cacheDir, `tiny-${recipeHash}.lock`), { waitTimeoutMs: 1_000 }, () => held);
  const controller = new AbortController();
  const waiting = new Promise<string>((resolve) => {
    const waiter = ensureLocalImage("tiny", {
      cacheDir,
      signal: controller.signal,
      // A recipe's deadline of 45 minutes, longer than the 30 minutes waited at least.
      buildTimeoutMs: 45 * 60_000,
      progress: (e) => {
        if (e.phase === "waiting-for-build" && e.detail?.includes("of at most")) resolve(e.detail);
      },
    });
    waiter.catch(() => {});
  });
  try {
    assert.match(await waiting, /waited \d+ s of at most 45 min$/);
  } finally {
    controller.abort(new Error("test done"));
    release();
    await holder;
  }
});

test("a build aborted half-way rejects with the abort reason and leaves no temp files", {
  timeout: buildTimeoutMs,
}, async () => {
  const cacheDir = await freshCacheDir();
  const controller = new AbortController();
  const reason = new Error("job cancelled");
  const build = ensureLocalImage("tiny", {
    cacheDir,
    signal: controller.signal,
    progress: (e) => {
      if (e.phase === "downloading-packages") controller.abort(reason);
    },
  });

  await assert.rejects(build, (error) => error === reason);
  assert.deepEqual(await readdir(cacheDir), [], "no image, temp dir or lock is left");
});

test("an unknown label is refused with an error that names it and the known labels", async () => {
  await assert.rejects(
    ensureLocalImage(`no-such-image-${randomUUID()}`, { cacheDir: await freshCacheDir() }),
    (error) => {
      assert.ok(error instanceof UnknownImageError);
      assert.equal(error.code, "unknown_image");
      assert.match(error.message, /no-such-image-/);
      for (const label of knownImageLabels()) assert.ok(error.message.includes(label), `names ${label}`);
      return true;
    },
  );
});
