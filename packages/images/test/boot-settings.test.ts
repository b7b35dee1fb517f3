import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { findCatalogEntry, loadImageCatalog, parseImageCatalog, withBootSettings } from "@solstice/images";
import { findRecipe } from "../src/recipes.ts";

const entry = (boot: string) => `images:
  - label: t
    build: tiny-fast
    boot: ${boot}
    cloudInit: none
    defaults: { cpus: 1, memoryMiB: 512, diskGiB: 1 }
    confirmed: true
`;

describe("per-image boot settings in the catalog", () => {
  test("the fast settings are accepted and reach the image", () => {
    const catalog = parseImageCatalog(
      entry(
        "{ machine: microvm, seedMedium: virtio, readiness: ssh, kernel: pvh, keys: agent, snapshot: true, kernelArgs: [loglevel=1] }",
      ),
    );
    const boot = findCatalogEntry(catalog, "t").boot;
    const recipe = findRecipe("tiny-fast");
    assert.ok(recipe);
    const image = withBootSettings(
      recipe.describe("/c/x", "h", () => true),
      boot,
    );
    assert.equal(image.machine, "microvm");
    assert.equal(image.kernelEntry, "pvh");
    assert.equal(image.keys, "agent");
    assert.equal(image.snapshot, true);
    assert.deepEqual(image.kernelArgs, ["loglevel=1"]);
    assert.equal(image.kernel?.pvh, "/c/x/vmlinux");
    assert.equal(recipe.describe("/c/x", "h", () => false).kernel?.pvh, undefined);
  });

  test("mitigations are never switched off", () => {
    assert.throws(() => parseImageCatalog(entry("{ kernelArgs: [mitigations=off] }")), /mitigations= is never changed/);
  });

  test("a snapshot needs the key agent, and microvm has no CD-ROM", () => {
    assert.throws(() => parseImageCatalog(entry("{ snapshot: true }")), /snapshot needs keys: agent/);
    assert.throws(() => parseImageCatalog(entry("{ machine: microvm, seedMedium: cdrom }")), /microvm has no CD-ROM/);
  });

  test("tiny and debian-12 boot exactly as their recipes describe them", async () => {
    const catalog = await loadImageCatalog();
    for (const label of ["tiny", "debian-12"]) {
      const recipe = findRecipe(label);
      assert.ok(recipe);
      const built = recipe.describe("/c/x", "h", () => true);
      assert.deepEqual(withBootSettings(built, findCatalogEntry(catalog, label).boot), built);
    }
  });
});
