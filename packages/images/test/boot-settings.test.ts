import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { findCatalogEntry, loadImageCatalog, parseImageCatalog, withBootSettings } from "@solstice/images";
import { findRecipe, knownImageLabels } from "../src/recipes.ts";

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

  test("a guest's architecture, its recipe and its machine must agree", () => {
    const arm = (build: string, boot: string, more = "") => `images:
  - label: a
    arch: aarch64
    build: ${build}
    boot: ${boot}
    cloudInit: solstice-tiny
    defaults: { cpus: 1, memoryMiB: 512, diskGiB: 1 }
    confirmed: true
${more}`;
    assert.equal(
      findCatalogEntry(parseImageCatalog(arm("tiny-arm64", "{ machine: virt, seedMedium: virtio }")), "a").arch,
      "aarch64",
    );
    assert.throws(() => parseImageCatalog(arm("tiny", "{ machine: virt, seedMedium: virtio }")), /arch differs/);
    assert.throws(
      () => parseImageCatalog(arm("tiny-arm64", "{ machine: q35, seedMedium: virtio }")),
      /aarch64 and riscv64 guests on virt/,
    );
    assert.throws(
      () => parseImageCatalog(arm("tiny-arm64", "{ machine: virt, seedMedium: virtio, kernel: pvh }")),
      /pvh is an x86 boot protocol/,
    );
    assert.throws(
      () => parseImageCatalog(entry("{ machine: virt, seedMedium: virtio }")),
      /x86_64 guests boot on q35, pc or microvm/,
    );
    assert.throws(
      () =>
        parseImageCatalog(
          arm(
            "tiny-arm64",
            "{ machine: virt, seedMedium: virtio }",
            "    source: { url: https://example.org/a.qcow2, checksum: { algorithm: sha256, file: https://example.org/S }, compression: none, format: qcow2 }\n",
          ),
        ),
      /downloaded images are x86_64 only/,
    );
  });

  test("a riscv64 guest is refused snapshot restore, with the reason; an aarch64 one is not", () => {
    const agentGuest = (arch: string, build: string) => `images:
  - label: r
    arch: ${arch}
    build: ${build}
    boot: { machine: virt, seedMedium: virtio, readiness: ssh, keys: agent, snapshot: true }
    cloudInit: none
    defaults: { cpus: 1, memoryMiB: 512, diskGiB: 1 }
    confirmed: true
`;
    assert.throws(
      () => parseImageCatalog(agentGuest("riscv64", "tiny-riscv64")),
      /images\.0: snapshot: riscv64 guests boot cold: the key agent receives nothing over virtio-serial/,
    );
    assert.equal(
      findCatalogEntry(parseImageCatalog(agentGuest("aarch64", "tiny-arm64-fast")), "r").boot.snapshot,
      true,
    );
  });

  test("every built image boots exactly as its recipe describes it", async () => {
    const catalog = await loadImageCatalog();
    for (const label of knownImageLabels()) {
      const recipe = findRecipe(label);
      assert.ok(recipe);
      const built = recipe.describe("/c/x", "h", () => true);
      assert.deepEqual(withBootSettings(built, findCatalogEntry(catalog, label).boot), built);
    }
  });

  test("an image may declare its own Node runtimes by major, as absolute guest paths", () => {
    const declared = (node: string) => `${entry("{ machine: q35 }")}    node: ${node}\n`;
    assert.deepEqual(findCatalogEntry(parseImageCatalog(declared('{ "20": /usr/bin/node }')), "t").node, {
      "20": "/usr/bin/node",
    });
    assert.equal(findCatalogEntry(parseImageCatalog(entry("{ machine: q35 }")), "t").node, undefined);
    assert.throws(() => parseImageCatalog(declared('{ "18": /usr/bin/node }')), /node: Unrecognized key: "18"/);
    assert.throws(() => parseImageCatalog(declared('{ "24": bin/node }')), /node\.24: an absolute path in the guest/);
  });
});
