import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { access, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import {
  type CatalogEntry,
  ensureImage,
  ImageError,
  loadImageCatalog,
  parseImageCatalog,
  pruneImageCache,
  pullImage,
  verifyCachedImages,
} from "@solstice/images";
import { projectRoot, runCiadm } from "../../../test/support/ciadm.ts";

const run = promisify(execFile);
const dirs: string[] = [];
async function tempDir(what: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `solstice-pull-${what}-${randomUUID().slice(0, 8)}-`));
  dirs.push(dir);
  return dir;
}

/** Files the server offers, by path; and, per path, how the next request should misbehave. */
const files = new Map<string, Buffer>();
const faults = new Map<string, "cut-after-half" | "ignore-range">();
const requests: { path: string; range?: string }[] = [];
let server: Server;
let base: string;
let workDir: string;
/** The raw disk every compressed variant holds; pulls are compared against it. */
let rawDisk: string;

before(async () => {
  workDir = await tempDir("work");
  rawDisk = join(workDir, "disk.raw");
  // 2 MiB of random data in an 8 MiB raw disk: not trivially compressible, several chunks long.
  await run("qemu-img", ["create", "-q", "-f", "raw", rawDisk, "8M"]);
  await run("dd", [`if=/dev/urandom`, `of=${rawDisk}`, "bs=1M", "count=2", "conv=notrunc", "status=none"]);
  const raw = await readFile(rawDisk);
  files.set("/disk.raw.gz", gzipSync(raw));
  await run("zstd", ["-q", "-f", "-o", join(workDir, "disk.raw.zst"), rawDisk]);
  files.set("/disk.raw.zst", await readFile(join(workDir, "disk.raw.zst")));
  await run("xz", ["-k", "-f", "-T1", rawDisk]);
  files.set("/disk.raw.xz", await readFile(`${rawDisk}.xz`));
  await run("qemu-img", ["convert", "-q", "-f", "raw", "-O", "qcow2", rawDisk, join(workDir, "disk.qcow2")]);
  files.set("/disk.qcow2", await readFile(join(workDir, "disk.qcow2")));
  const sums = [...files].map(([path, data]) => `${sha256(data)} *${path.slice(1)}`).join("\n");
  files.set("/SHA256SUMS", Buffer.from(`${sums}\n`));
  const bsd = [...files].map(([path, data]) => `SHA256 (${path.slice(1)}) = ${sha256(data)}`).join("\n");
  files.set("/CHECKSUM.SHA256", Buffer.from(`${bsd}\n`));
  files.set("/disk.raw.zst.sha256", Buffer.from(`${sha256(files.get("/disk.raw.zst") as Buffer)}\n`));
  // A corrupt copy: same name in another directory, one byte changed, listed with the good digest.
  const corrupt = Buffer.from(files.get("/disk.raw.xz") as Buffer);
  corrupt[corrupt.length >> 1] = (corrupt[corrupt.length >> 1] as number) ^ 0xff;
  files.set("/bad/disk.raw.xz", corrupt);

  server = createServer((req, res) => serve(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function serve(req: IncomingMessage, res: import("node:http").ServerResponse): void {
  const path = new URL(req.url ?? "/", "http://x").pathname;
  requests.push({ path, ...(req.headers.range ? { range: req.headers.range } : {}) });
  const data = files.get(path);
  if (!data) {
    res.writeHead(404).end();
    return;
  }
  const fault = faults.get(path);
  faults.delete(path);
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  if (range && fault !== "ignore-range") {
    const from = Number(range[1]);
    if (from >= data.length) {
      res.writeHead(416).end();
      return;
    }
    res.writeHead(206, {
      "content-length": data.length - from,
      "content-range": `bytes ${from}-${data.length - 1}/${data.length}`,
    });
    res.end(data.subarray(from));
    return;
  }
  res.writeHead(200, { "content-length": data.length });
  if (fault === "cut-after-half") {
    res.write(data.subarray(0, data.length >> 1), () => res.destroy());
    return;
  }
  res.end(data);
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

function entry(label: string, source: Partial<NonNullable<CatalogEntry["source"]>> & { url: string }): CatalogEntry {
  return {
    label,
    aliases: [],
    description: "",
    arch: "x86_64",
    source: {
      checksum: { algorithm: "sha256", file: `${base}/SHA256SUMS` },
      compression: "none",
      format: "raw",
      ...source,
    },
    prefer: "download",
    boot: { machine: "q35", seedMedium: "cdrom", readiness: "ssh", sshUser: "root" },
    cloudInit: "cloud-init",
    defaults: { cpus: 1, memoryMiB: 256, diskGiB: 1 },
    confirmed: true,
  };
}

/** The pulled disk holds exactly the bytes of the original raw disk (and zeros beyond). */
async function assertSameDisk(qcow2: string): Promise<void> {
  const info = JSON.parse((await run("qemu-img", ["info", "--output=json", qcow2])).stdout) as Record<string, unknown>;
  assert.equal(info.format, "qcow2");
  assert.equal(info["virtual-size"], 1024 ** 3, "the disk is grown to the catalog's default size");
  await run("qemu-img", ["compare", "-q", "-f", "raw", "-F", "qcow2", rawDisk, qcow2]);
}

/** Everything in the cache that is not a lock or an empty downloads directory. */
async function cacheContents(cacheDir: string): Promise<string[]> {
  const top = await readdir(cacheDir);
  const parts = await readdir(join(cacheDir, ".downloads")).catch(() => []);
  return [...top.filter((n) => n !== ".downloads"), ...parts.map((p) => `.downloads/${p}`)];
}

for (const [compression, path, checksum] of [
  ["zstd", "/disk.raw.zst", "bare sidecar"],
  ["xz", "/disk.raw.xz", "BSD CHECKSUM.SHA256"],
  ["gzip", "/disk.raw.gz", "GNU SHA256SUMS"],
] as const) {
  test(`a ${compression}-compressed raw image verified by a ${checksum} is pulled into the cache as qcow2`, {
    timeout: 60_000,
  }, async () => {
    const cacheDir = await tempDir("cache");
    const file =
      checksum === "bare sidecar"
        ? `${base}${path}.sha256`
        : checksum.startsWith("BSD")
          ? `${base}/CHECKSUM.SHA256`
          : `${base}/SHA256SUMS`;
    const phases: string[] = [];
    const image = await pullImage(
      entry(`t-${compression}`, { url: `${base}${path}`, compression, checksum: { algorithm: "sha256", file } }),
      { cacheDir, progress: (e) => phases.push(e.phase) },
    );
    await assertSameDisk(image.disk);
    assert.equal(image.diskFormat, "qcow2");
    assert.deepEqual(
      [...new Set(phases)],
      ["checksum", "download", "verify", "decompress", "convert", "done"],
      "the checksum is checked before the image is decompressed or converted",
    );
    assert.deepEqual(await cacheContents(cacheDir), [
      `t-${compression}-dl-${image.recipeHash.slice("download-".length)}`,
    ]);
  });
}

test("an uncompressed qcow2 image with a pinned digest is pulled, and a second pull downloads nothing", {
  timeout: 60_000,
}, async () => {
  const cacheDir = await tempDir("cache");
  const qcow2 = files.get("/disk.qcow2") as Buffer;
  const spec = entry("t-qcow2", {
    url: `${base}/disk.qcow2`,
    format: "qcow2",
    checksum: { algorithm: "sha256", value: sha256(qcow2) },
  });
  const first = await pullImage(spec, { cacheDir });
  await assertSameDisk(first.disk);
  const before = requests.length;
  const second = await pullImage(spec, { cacheDir });
  assert.deepEqual(second, first);
  assert.equal(requests.length, before, "nothing is downloaded again");
});

test("a corrupt download is refused and nothing of it is left in the cache", { timeout: 60_000 }, async () => {
  const cacheDir = await tempDir("cache");
  const spec = entry("t-corrupt", {
    url: `${base}/bad/disk.raw.xz`,
    compression: "xz",
    checksum: { algorithm: "sha256", value: sha256(files.get("/disk.raw.xz") as Buffer) },
  });
  const phases: string[] = [];
  await assert.rejects(
    pullImage(spec, { cacheDir, progress: (e) => phases.push(e.phase) }),
    (error: unknown) =>
      error instanceof ImageError && error.code === "checksum_mismatch" && /deleted, not used/.test(error.message),
  );
  assert.ok(!phases.includes("decompress"), "a corrupt download is never decompressed");
  assert.deepEqual(await cacheContents(cacheDir), []);
});

test("an interrupted download resumes from where it broke off on the next pull", { timeout: 60_000 }, async () => {
  const cacheDir = await tempDir("cache");
  const spec = entry("t-resume", { url: `${base}/disk.raw.zst`, compression: "zstd" });
  faults.set("/disk.raw.zst", "cut-after-half");
  await assert.rejects(
    pullImage(spec, { cacheDir }),
    (e: unknown) => e instanceof ImageError && e.code === "download_failed",
  );
  const [part] = (await cacheContents(cacheDir)).filter((n) => n.endsWith(".part"));
  assert.ok(part, "the partial download is kept for the next pull");

  const mark = requests.length;
  const image = await pullImage(spec, { cacheDir });
  await assertSameDisk(image.disk);
  const resumed = requests.slice(mark).find((r) => r.path === "/disk.raw.zst");
  assert.match(resumed?.range ?? "", /^bytes=[1-9]\d*-$/, "the second pull asks only for the rest");
  assert.deepEqual(
    (await cacheContents(cacheDir)).filter((n) => n.endsWith(".part")),
    [],
    "the part file is gone",
  );
});

test("a server that ignores the range request gets the download restarted cleanly", { timeout: 60_000 }, async () => {
  const cacheDir = await tempDir("cache");
  const spec = entry("t-restart", { url: `${base}/disk.raw.gz`, compression: "gzip" });
  faults.set("/disk.raw.gz", "cut-after-half");
  await assert.rejects(pullImage(spec, { cacheDir }));
  faults.set("/disk.raw.gz", "ignore-range");
  const image = await pullImage(spec, { cacheDir });
  await assertSameDisk(image.disk);
});

test("a download that is not the format the catalog says is refused before conversion", {
  timeout: 60_000,
}, async () => {
  const cacheDir = await tempDir("cache");
  const spec = entry("t-format", {
    url: `${base}/disk.qcow2`,
    format: "raw",
    checksum: { algorithm: "sha256", value: sha256(files.get("/disk.qcow2") as Buffer) },
  });
  await assert.rejects(pullImage(spec, { cacheDir }), /is qcow2, but the catalog says raw/);
  assert.deepEqual(
    (await cacheContents(cacheDir)).filter((n) => !n.endsWith(".part")),
    [],
  );
});

test("verify finds a pulled disk that changed after the pull, and prune removes superseded pulls and leftovers", {
  timeout: 60_000,
}, async () => {
  const cacheDir = await tempDir("cache");
  const spec = entry("t-verify", { url: `${base}/disk.raw.zst`, compression: "zstd" });
  const image = await pullImage(spec, { cacheDir });
  assert.deepEqual(
    (await verifyCachedImages(cacheDir)).map((r) => r.ok),
    [true],
  );

  await run("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 0 4k", image.disk]);
  const [damaged] = await verifyCachedImages(cacheDir);
  assert.equal(damaged?.ok, false);
  assert.match(damaged?.problem ?? "", /pulled as/);

  // An older pull of the same label and an abandoned part file: both are prune's to delete.
  const oldDir = join(cacheDir, "t-verify-dl-0000000000000000");
  await run("cp", ["-r", image.disk.slice(0, image.disk.lastIndexOf("/")), oldDir]);
  const record = JSON.parse(await readFile(join(oldDir, "pull.json"), "utf8"));
  await writeFile(join(oldDir, "pull.json"), JSON.stringify({ ...record, pulledAt: "2000-01-01T00:00:00.000Z" }));
  await writeFile(join(cacheDir, ".downloads", "t-other-1111111111111111.part"), "partial");
  const wouldRemove = await pruneImageCache({ cacheDir, dryRun: true });
  assert.deepEqual(wouldRemove.sort(), [join(cacheDir, ".downloads", "t-other-1111111111111111.part"), oldDir].sort());
  await access(oldDir);
  await pruneImageCache({ cacheDir });
  await assert.rejects(access(oldDir));
  await access(image.disk);
});

test("ensureImage builds the local image when the catalog's download is unreachable and the entry has a build", {
  timeout: 240_000,
}, async () => {
  const catalog = parseImageCatalog(`
images:
  - label: fallback-${randomUUID().slice(0, 8)}
    build: tiny
    source:
      url: http://127.0.0.1:9/nothing-listens-here.qcow2
      checksum: { algorithm: sha256, value: "${"0".repeat(64)}" }
      compression: none
      format: qcow2
    cloudInit: solstice-tiny
    defaults: { cpus: 1, memoryMiB: 512, diskGiB: 1 }
    confirmed: true
`);
  const [fallback] = catalog.images;
  const image = await ensureImage(fallback?.label as string, { catalog, idleTimeoutMs: 5_000 });
  assert.equal(image.label, "tiny");
  assert.ok(image.kernel, "the locally built tiny image");
});

test("the repository's images.yaml is a valid catalog with every required image and a default per label", async () => {
  const catalog = await loadImageCatalog(join(projectRoot, "images.yaml"));
  const labels = catalog.images.map((e) => e.label);
  for (const label of [
    "tiny",
    "debian-12",
    "ubuntu-24.04",
    "freebsd-14",
    "omnios-stable",
    "omnios-lts",
    "openindiana",
  ]) {
    assert.ok(labels.includes(label), `${label} is in images.yaml`);
  }
  for (const image of catalog.images) {
    assert.ok(image.source || image.build, `${image.label} can be made`);
    if (image.source) assert.match(image.source.url, /^https:\/\//, `${image.label} downloads over https`);
  }
  assert.throws(
    () =>
      parseImageCatalog(
        "images:\n  - label: x\n    cloudInit: cloud-init\n    defaults: { cpus: 1, memoryMiB: 512, diskGiB: 1 }\n    confirmed: true\n",
      ),
    /images\.0: needs a source, a build, or both/,
  );
});

test("ciadm images pull shows progress, list shows the pulled image, prepare finds it", {
  timeout: 60_000,
}, async () => {
  const cacheDir = await tempDir("cache");
  const catalogFile = join(workDir, "catalog.yaml");
  await writeFile(
    catalogFile,
    `images:
  - label: cli-image
    source:
      url: ${base}/disk.raw.xz
      checksum: { algorithm: sha256, file: ${base}/SHA256SUMS }
      compression: xz
      format: raw
    cloudInit: cloud-init
    defaults: { cpus: 1, memoryMiB: 256, diskGiB: 1 }
    confirmed: true
`,
  );
  const env = { SOLSTICE_IMAGE_CACHE: cacheDir, SOLSTICE_IMAGE_CATALOG: catalogFile };
  const pull = await runCiadm(["images", "pull", "cli-image"], workDir, env);
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stderr, /cli-image: download .*100%/);
  assert.match(pull.stdout, /cli-image: ready at .*disk\.qcow2/);
  const list = await runCiadm(["images", "list", "--json"], workDir, env);
  assert.equal(list.code, 0, list.stderr);
  const [state] = JSON.parse(list.stdout) as { label: string; cached?: { how: string } }[];
  assert.equal(state?.cached?.how, "pulled");
  // prepare finds the pulled copy (as a job would) and says where; an unknown label fails.
  const prepare = await runCiadm(["images", "prepare", "cli-image", "--json"], workDir, env);
  assert.equal(prepare.code, 0, prepare.stderr);
  const [prepared] = JSON.parse(prepare.stdout) as { label: string; disk: string }[];
  assert.equal(prepared?.label, "cli-image");
  assert.match(prepared?.disk ?? "", /disk\.qcow2$/);
  const unknown = await runCiadm(["images", "prepare", "no-such-image"], workDir, env);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /no-such-image/);
});
