import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { findRecipe, knownImageLabels, readRecipe, recipeHash, writeRecipe } from "../src/recipes.ts";

// A build runs from the recipe as it was read and hashed, never from recipes/ as it is later:
// an upgrade or an edit during a build would otherwise leave an image under a hash of files it
// was not built from (seen: a tiny-fast built with an edited helper sat under the old hash).
test("every recipe is built from the very bytes its hash names, written apart from recipes/", async () => {
  const dir = await mkdtemp(join(tmpdir(), "solstice-recipe-"));
  try {
    for (const label of knownImageLabels()) {
      const recipe = findRecipe(label);
      assert.ok(recipe);
      const snapshot = await readRecipe(recipe);
      assert.equal(snapshot.hash, await recipeHash(recipe), `${label}: one hash`);
      const written = await writeRecipe(recipe, snapshot, join(dir, label));
      assert.ok(written.script.startsWith(join(dir, label)), `${label}: the script runs from the copy`);
      assert.deepEqual(await readFile(written.script), snapshot.files.get(recipe.script));
      assert.deepEqual(Object.keys(written.inputs).sort(), Object.keys(recipe.inputs).sort());
      for (const [name, path] of Object.entries(written.inputs)) {
        assert.ok(path.startsWith(join(dir, label)), `${label}: ${name} is read from the copy`);
        assert.deepEqual(await readFile(path), snapshot.files.get(recipe.inputs[name] as string), `${label}: ${name}`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
