import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

/** Folder of the image cache that keeps the logs of failed builds, one folder per recipe. */
export const failedBuildsDirName = "failed-builds";

/** The build's whole output, as runRecipe writes it into the build's temp directory. */
export const buildOutputLogName = "build.log";

/**
 * Keeps what a failed build wrote before its temp directory is deleted: its whole output
 * (`outputLog`) and every `*.log` file at the top of its scratch directory (the build guest's
 * console, debootstrap's log…), in `<cacheDir>/failed-builds/<label>-<hash>/`. A later failure of
 * the same recipe replaces them; `pruneImageCache` deletes those of recipes that changed since.
 * Returns the folder and the names kept in it.
 */
export async function keepFailedBuildLogs(
  cacheDir: string,
  build: { label: string; hash: string; outputLog: string; scratchDir: string },
): Promise<{ dir: string; files: string[] }> {
  const dir = join(cacheDir, failedBuildsDirName, `${build.label}-${build.hash}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  const keep = async (from: string, name: string): Promise<void> => {
    try {
      await copyFile(from, join(dir, name));
      files.push(name);
    } catch (error) {
      // A build that failed before writing a log has none to keep.
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
  };
  await keep(build.outputLog, buildOutputLogName);
  const scratch = await readdir(build.scratchDir, { withFileTypes: true }).catch(() => []);
  for (const entry of scratch) {
    if (entry.isFile() && entry.name.endsWith(".log") && entry.name !== buildOutputLogName) {
      await keep(join(build.scratchDir, entry.name), entry.name);
    }
  }
  return { dir, files };
}
