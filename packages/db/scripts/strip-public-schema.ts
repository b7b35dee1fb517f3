// drizzle-kit writes foreign keys as `REFERENCES "public"."jobs"` even for tables declared without
// a schema. Our migrations must land in whatever schema the connection's search_path names (a
// throwaway one per test), so `pnpm generate` runs this right after drizzle-kit to drop the prefix.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const migrationsDir = new URL("../drizzle/", import.meta.url).pathname;

for (const name of await readdir(migrationsDir)) {
  if (!name.endsWith(".sql")) continue;
  const path = join(migrationsDir, name);
  const before = await readFile(path, "utf8");
  const after = before.replaceAll('"public".', "");
  if (after !== before) await writeFile(path, after);
}
