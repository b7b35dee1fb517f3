import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import path from "node:path";

/**
 * An empty action cache for one test's orchestrator (SOLSTICE_ACTIONS_CACHE), so its first job
 * really downloads its actions. Node runtimes stay shared with the host's own cache: they are
 * pinned by version and checksum, and fetching them again for every run would only cost time.
 */
export async function freshActionCache(): Promise<{ dir: string; close(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), "solstice-action-cache-"));
  const shared = path.join(process.env.SOLSTICE_ACTIONS_CACHE ?? path.join(homedir(), ".cache", "solstice"), "node");
  await mkdir(shared, { recursive: true });
  await symlink(shared, path.join(dir, "node"));
  return { dir, close: () => rm(dir, { recursive: true, force: true }) };
}
