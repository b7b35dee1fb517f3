import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { hostArch, loadImageCatalog } from "@solstice/images";
import { createQemuBackend, VmError } from "@solstice/vm";
import { pino } from "pino";
import { describePlatforms, hostPlatforms } from "../src/host-platforms.ts";

const log = pino({ level: "silent" });
// The accelerator verdicts go to a cache of this test's own; no VM is booted here.
const cacheDir = mkdtempSync(join(tmpdir(), "solstice-platforms-"));
process.env.SOLSTICE_CACHE_DIR = cacheDir;
after(() => rmSync(cacheDir, { recursive: true, force: true }));

test("a host advertises each served label's architecture: TCG for arches other than its own", async () => {
  const platforms = await hostPlatforms({
    labels: ["tiny", "tiny-arm64", "tiny-riscv64", "tiny-fast"],
    catalog: await loadImageCatalog(),
    backend: createQemuBackend({ log }),
    log,
  });
  assert.deepEqual(platforms.x86_64?.labels, ["tiny", "tiny-fast"]);
  assert.deepEqual(platforms.aarch64?.labels, ["tiny-arm64"]);
  assert.deepEqual(platforms.riscv64?.labels, ["tiny-riscv64"]);
  for (const arch of ["aarch64", "riscv64"] as const) {
    if (arch === hostArch()) continue;
    assert.equal(platforms[arch]?.accelerator, "tcg");
    assert.match(platforms[arch]?.reason ?? "", /KVM runs only the host's own architecture/);
  }
  assert.match(describePlatforms(platforms), /^x86_64=(kvm|tcg),aarch64=(kvm|tcg),riscv64=(kvm|tcg)$/);
});

test("a label whose QEMU emulator is missing stops the host at start-up, naming the package", async () => {
  const backend = createQemuBackend({ log, qemuBinaries: { riscv64: "/nonexistent/qemu-system-riscv64" } });
  await assert.rejects(
    hostPlatforms({ labels: ["tiny", "tiny-riscv64"], catalog: await loadImageCatalog(), backend, log }),
    (error: unknown) =>
      error instanceof VmError &&
      error.code === "unsupported" &&
      /cannot run riscv64 guests/.test(error.message) &&
      error.hint === "apt-get install qemu-system-misc",
  );
});

test("a forced kvm holds for the host's own architecture only", async () => {
  const platforms = await hostPlatforms({
    labels: ["tiny", "tiny-arm64"],
    catalog: await loadImageCatalog(),
    backend: createQemuBackend({ log, accelerator: "kvm" }),
    log,
  });
  const own = hostArch();
  for (const arch of ["x86_64", "aarch64"] as const) {
    assert.equal(platforms[arch]?.accelerator, arch === own ? "kvm" : "tcg");
  }
});

test("labels the catalog does not know are not advertised", async () => {
  const platforms = await hostPlatforms({
    labels: ["not-in-the-catalog"],
    catalog: await loadImageCatalog(),
    backend: createQemuBackend({ log }),
    log,
  });
  assert.deepEqual(platforms, {});
});
