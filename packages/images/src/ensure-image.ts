import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rename } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { removeAbandonedBuilds, removeBuildDir } from "./build-dir.ts";
import { describeProgress, type LockWait, withBuildLock } from "./build-lock.ts";
import { imageCacheDir } from "./cache-dir.ts";
import { ImageBuildError, ImageError, UnknownImageError } from "./errors.ts";
import { buildOutputLogName, keepFailedBuildLogs } from "./failed-build-logs.ts";
import type { ImageProgress, LocalImage } from "./local-image.ts";
import { readManifest, writeManifest } from "./manifest.ts";
import {
  findRecipe,
  type ImageRecipe,
  knownImageLabels,
  type RecipeSnapshot,
  readRecipe,
  writeRecipe,
} from "./recipes.ts";
import { runRecipe } from "./run-recipe.ts";

export interface EnsureImageOptions {
  /** Default: `imageCacheDir()` (`$SOLSTICE_IMAGE_CACHE` or `~/.cache/solstice/images`). */
  cacheDir?: string;
  signal?: AbortSignal;
  progress?: ImageProgress;
  log?: Logger;
  /** Deadline of one build. Default: the recipe's, else 20 minutes. */
  buildTimeoutMs?: number;
  /**
   * Longest wait for another process building the same image. Default: the build's own deadline,
   * and at least 30 minutes, so a job that arrives during a long build (debian-12-arm64's, emulated)
   * does not give up before the build it waits for could.
   */
  lockWaitTimeoutMs?: number;
}

const defaultBuildTimeoutMs = 20 * 60_000;
const defaultLockWaitTimeoutMs = 30 * 60_000;

/**
 * Returns the locally built image for `label` ("tiny", "debian-12" or an alias), building it
 * first when the cache has no image for the current recipe. Concurrent callers, in this
 * process or others, share one build.
 */
export async function ensureLocalImage(label: string, options: EnsureImageOptions = {}): Promise<LocalImage> {
  const recipe = findRecipe(label);
  if (!recipe) throw new UnknownImageError(label, knownImageLabels());
  const cacheDir = resolve(options.cacheDir ?? imageCacheDir());
  const snapshot = await readRecipe(recipe);
  const { hash } = snapshot;
  const imageDir = join(cacheDir, `${recipe.label}-${hash}`);

  const cached = await readManifest(imageDir).catch(ignoreDamage);
  if (cached) {
    options.log?.debug({ image: recipe.label, dir: imageDir }, "image found in cache");
    return cached;
  }

  await mkdir(cacheDir, { recursive: true });
  const lockPath = join(cacheDir, `${recipe.label}-${hash}.lock`);
  const buildTimeoutMs = options.buildTimeoutMs ?? recipe.buildTimeoutMs ?? defaultBuildTimeoutMs;
  return withBuildLock(
    lockPath,
    {
      waitTimeoutMs: options.lockWaitTimeoutMs ?? Math.max(buildTimeoutMs, defaultLockWaitTimeoutMs),
      ...(options.signal ? { signal: options.signal } : {}),
      onWait: (holder) => {
        options.log?.info({ image: recipe.label, lock: lockPath, holder }, "waiting for another build of this image");
        options.progress?.({ phase: "waiting-for-build", detail: holder });
      },
      onWaiting: (wait) => options.progress?.(waitingProgress("waiting-for-build", wait)),
    },
    async (share) => {
      // The build we waited for may have finished, or an earlier one left a damaged copy.
      const existing = await readManifest(imageDir).catch(ignoreDamage);
      if (existing) return existing;
      await removeBuildDir(imageDir);
      const progress: ImageProgress = (event) => {
        options.progress?.(event);
        share({ phase: event.phase, ...(event.fraction === undefined ? {} : { fraction: event.fraction }) });
      };
      return build(recipe, snapshot, cacheDir, imageDir, { ...options, buildTimeoutMs, progress });
    },
  );
}

async function build(
  recipe: ImageRecipe,
  snapshot: RecipeSnapshot,
  cacheDir: string,
  imageDir: string,
  options: EnsureImageOptions,
): Promise<LocalImage> {
  if (recipe.needsRoot && process.getuid?.() !== 0) {
    throw new ImageBuildError(recipe.label, "this build needs root (debootstrap)", "", {
      hint: `build it once as root (SOLSTICE_IMAGE_CACHE=${cacheDir}), or use the "tiny" image`,
    });
  }
  const { hash } = snapshot;
  const tempPrefix = `.build-${recipe.label}-${hash}-`;
  // We hold this image's lock, so any other temp dir of the same build is abandoned.
  await removeAbandonedBuilds(cacheDir, tempPrefix);
  const temp = await mkdtemp(join(cacheDir, tempPrefix));
  const outDir = join(temp, "image");
  const scratchDir = join(temp, "scratch");
  const started = Date.now();
  options.log?.info({ image: recipe.label, recipeHash: hash }, "building image");
  try {
    await mkdir(outDir);
    await mkdir(scratchDir);
    const files = await writeRecipe(recipe, snapshot, join(temp, "recipe"));
    const outputLog = join(temp, buildOutputLogName);
    await runRecipe({
      label: recipe.label,
      script: files.script,
      outDir,
      scratchDir,
      outputLog,
      env: { ...recipe.params, ...files.inputs, ...recipe.cacheEnv(cacheDir) },
      timeoutMs: options.buildTimeoutMs ?? defaultBuildTimeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.progress ? { progress: options.progress } : {}),
      ...(options.log ? { log: options.log } : {}),
    }).catch(async (error: unknown) => {
      // The temp directory goes below; what the build wrote is what its cause is found from.
      if (!(error instanceof ImageBuildError)) throw error;
      const logs = await keepFailedBuildLogs(cacheDir, { label: recipe.label, hash, outputLog, scratchDir });
      throw new ImageBuildError(recipe.label, error.reason, error.logTail, {
        logs,
        hint: `the build's whole output is ${join(logs.dir, buildOutputLogName)}; a build guest's console is console.log beside it`,
      });
    });
    const image = recipe.describe(imageDir, hash, (name) => existsSync(join(outDir, name)));
    await writeManifest(outDir, image);
    await removeBuildDir(scratchDir);
    await rename(outDir, imageDir);
    options.log?.info({ image: recipe.label, dir: imageDir, ms: Date.now() - started }, "image built");
    options.progress?.({ phase: "done", fraction: 1 });
    return image;
  } finally {
    await removeBuildDir(temp);
  }
}

/**
 * A waiting job's progress line: who builds, how far their build is, and how long this job has
 * waited of its bound, so a forge log shows a wait that moves and the point where it will end.
 */
export function waitingProgress(phase: string, wait: LockWait): Parameters<ImageProgress>[0] {
  const minutes = (ms: number) => (ms < 60_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`);
  const theirs = wait.progress ? `, at ${describeProgress(wait.progress)}` : "";
  return {
    phase,
    detail: `${wait.holder}${theirs}; waited ${minutes(wait.waitedMs)} of at most ${minutes(wait.boundMs)}`,
    fraction: wait.progress?.fraction ?? wait.waitedMs / wait.boundMs,
  };
}

function ignoreDamage(error: unknown): undefined {
  if (error instanceof ImageError && error.code === "bad_manifest") return undefined;
  throw error;
}
