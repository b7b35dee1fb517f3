import { readdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { imageCacheDir } from "./cache-dir.ts";
import type { ImageCatalog } from "./catalog.ts";
import { hashFile } from "./checksum.ts";
import { checkDisk } from "./disk-convert.ts";
import { ImageError } from "./errors.ts";
import { failedBuildsDirName } from "./failed-build-logs.ts";
import { readManifest } from "./manifest.ts";
import { downloadsDirName, findPulledImage, listPulledImages } from "./pull-image.ts";
import { findRecipe, knownImageLabels, recipeHash } from "./recipes.ts";

export interface CatalogImageState {
  label: string;
  aliases: readonly string[];
  description: string;
  /** How the image is made: downloaded, built, or downloaded with the build as fallback. */
  origin: "download" | "build" | "download, else build" | "build (or pull)";
  confirmed: boolean;
  /** The cached copy jobs would use, if any. */
  cached?: { dir: string; how: "pulled" | "built"; bytes: number };
}

/** Each catalog image with what the cache holds for it. */
export async function listCatalogImages(catalog: ImageCatalog, cacheDirOption?: string): Promise<CatalogImageState[]> {
  const cacheDir = resolve(cacheDirOption ?? imageCacheDir());
  const states: CatalogImageState[] = [];
  for (const entry of catalog.images) {
    const origin =
      entry.source && entry.build
        ? entry.prefer === "build"
          ? "build (or pull)"
          : "download, else build"
        : entry.source
          ? "download"
          : "build";
    const state: CatalogImageState = {
      label: entry.label,
      aliases: entry.aliases,
      description: entry.description,
      origin,
      confirmed: entry.confirmed,
    };
    const pulled = await findPulledImage(cacheDir, entry.label);
    const built = entry.build ? await currentBuildDir(cacheDir, entry.build) : undefined;
    const dir = entry.prefer === "build" ? (built ?? dirOf(pulled?.disk)) : (dirOf(pulled?.disk) ?? built);
    if (dir) {
      state.cached = { dir, how: dir === dirOf(pulled?.disk) ? "pulled" : "built", bytes: await diskBytes(dir) };
    }
    states.push(state);
  }
  return states;
}

export interface VerifyResult {
  dir: string;
  ok: boolean;
  problem?: string;
}

/**
 * Checks every image in the cache: pulled disks against the sha256 recorded when they were
 * pulled, every disk with `qemu-img check`, every manifest's files present.
 */
export async function verifyCachedImages(cacheDirOption?: string, signal?: AbortSignal): Promise<VerifyResult[]> {
  const cacheDir = resolve(cacheDirOption ?? imageCacheDir());
  const results: VerifyResult[] = [];
  const pulled = new Map((await listPulledImages(cacheDir)).map((p) => [p.dir, p.record]));
  for (const dir of await imageDirs(cacheDir)) {
    try {
      const image = await readManifest(dir);
      if (!image) throw new ImageError("bad_manifest", "no image.json");
      const record = pulled.get(dir);
      if (record) {
        const actual = await hashFile(image.disk, "sha256", signal);
        if (actual !== record.diskSha256) {
          throw new ImageError("checksum_mismatch", `disk.qcow2 has sha256 ${actual}, pulled as ${record.diskSha256}`);
        }
      }
      if (image.diskFormat === "qcow2") await checkDisk(image.disk, signal);
      results.push({ dir, ok: true });
    } catch (error) {
      signal?.throwIfAborted();
      results.push({ dir, ok: false, problem: error instanceof Error ? error.message : String(error) });
    }
  }
  return results;
}

/**
 * Deletes what jobs can no longer use: pulled copies older than the newest of their label, local
 * builds of an old recipe and the logs of its failed builds, and the leftovers of interrupted
 * pulls and builds. Nothing that a
 * running pull or build holds a lock for is touched.
 */
export async function pruneImageCache(options: { cacheDir?: string; dryRun?: boolean } = {}): Promise<string[]> {
  const cacheDir = resolve(options.cacheDir ?? imageCacheDir());
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  const locked = (prefix: string) => names.some((n) => n.startsWith(prefix) && n.endsWith(".lock"));
  const doomed: string[] = [];

  const pulled = await listPulledImages(cacheDir);
  for (const label of new Set(pulled.map((p) => p.label))) {
    const mine = pulled
      .filter((p) => p.label === label)
      .sort((a, b) => b.record.pulledAt.localeCompare(a.record.pulledAt));
    for (const old of mine.slice(1)) doomed.push(old.dir);
  }
  const failedBuilds = await readdir(join(cacheDir, failedBuildsDirName)).catch(() => [] as string[]);
  for (const label of knownImageLabels()) {
    const current = `${label}-${await recipeHash(findRecipe(label) as NonNullable<ReturnType<typeof findRecipe>>)}`;
    const oldBuild = (name: string) =>
      new RegExp(`^${escapeRegExp(label)}-[0-9a-f]{16}$`).test(name) && name !== current;
    for (const name of names) {
      if (oldBuild(name) && !locked(name)) doomed.push(join(cacheDir, name));
    }
    // The logs of a failed build tell nothing about the recipe that replaced it.
    for (const name of failedBuilds.filter(oldBuild)) doomed.push(join(cacheDir, failedBuildsDirName, name));
  }
  for (const name of names) {
    const leftover = /^\.(pull|build)-(.+?)-/.exec(name);
    if (leftover?.[2] && !locked(`${leftover[2]}-`)) doomed.push(join(cacheDir, name));
  }
  for (const name of await readdir(join(cacheDir, downloadsDirName)).catch(() => [] as string[])) {
    const part = /^(.+)-([0-9a-f]{16})\.part$/.exec(name);
    if (part && !locked(`${part[1]}-dl-${part[2]}`)) doomed.push(join(cacheDir, downloadsDirName, name));
  }
  if (!options.dryRun) for (const path of doomed) await rm(path, { recursive: true, force: true });
  return doomed;
}

async function imageDirs(cacheDir: string): Promise<string[]> {
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  return names.filter((n) => /-(dl-)?[0-9a-f]{16}$/.test(n) && !n.startsWith(".")).map((n) => join(cacheDir, n));
}

async function currentBuildDir(cacheDir: string, recipeLabel: string): Promise<string | undefined> {
  const recipe = findRecipe(recipeLabel);
  if (!recipe) return undefined;
  const dir = join(cacheDir, `${recipe.label}-${await recipeHash(recipe)}`);
  return (await readManifest(dir).catch(() => undefined)) ? dir : undefined;
}

async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).blocks * 512;
  return total;
}

function dirOf(path: string | undefined): string | undefined {
  return path ? path.slice(0, path.lastIndexOf("/")) : undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
