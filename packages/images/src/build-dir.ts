import { execFile } from "node:child_process";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * Deletes a build's temp directory. A build killed mid-way can leave /proc mounted inside
 * its debootstrap chroot; those mounts are detached first so the delete never walks into them.
 */
export async function removeBuildDir(dir: string): Promise<void> {
  for (const mountPoint of await mountsUnder(dir)) {
    await run("umount", ["-l", mountPoint]);
  }
  await rm(dir, { recursive: true, force: true });
}

/** Removes leftovers of earlier builds of one image (their process died before cleanup). */
export async function removeAbandonedBuilds(cacheDir: string, prefix: string): Promise<void> {
  const names = await readdir(cacheDir);
  for (const name of names.filter((n) => n.startsWith(prefix))) {
    await removeBuildDir(join(cacheDir, name));
  }
}

/** Mount points below `dir`, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  let table: string;
  try {
    table = await readFile("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const prefix = `${dir}/`;
  return table
    .split("\n")
    .map((line) => unescapeMountPath(line.split(" ")[4] ?? ""))
    .filter((mountPoint) => mountPoint.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/** mountinfo writes space, tab, newline and backslash as octal escapes. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}
