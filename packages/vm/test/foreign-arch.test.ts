import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ensureImage, hostArch } from "@solstice/images";
import { connectSsh } from "@solstice/ssh";
import { createQemuBackend } from "@solstice/vm";
import pino from "pino";

const log = pino({ level: "warn" });

/**
 * Guests of other architectures, built from Debian's packages for them and booted by the same
 * backend on QEMU's virt machine. On this x86_64 machine both are emulated (TCG); the test runs
 * them one after the other, so it never has more than one VM up.
 */
describe("guests of other architectures", { timeout: 600_000 }, () => {
  const runRoot = join(tmpdir(), `solstice-arch-test-${randomUUID()}`);
  after(() => rmSync(runRoot, { recursive: true, force: true }));

  for (const [label, machine] of [
    ["tiny-arm64", "aarch64"],
    ["tiny-riscv64", "riscv64"],
  ] as const) {
    test(`${label} boots, takes the job's keys from its seed and runs commands as ${machine}`, async () => {
      const backend = createQemuBackend({ runRoot, log });
      const image = await ensureImage(label, { log });
      assert.equal(image.arch, machine);
      const vm = await backend.boot({ vmName: `arch-${label}-${randomUUID().slice(0, 8)}`, image, log });
      try {
        // KVM runs only the host's own architecture: the backend emulates without probing.
        assert.equal(vm.accelerator, hostArch() === machine ? "kvm" : "tcg");
        const session = await connectSsh(vm.ssh, { readyTimeoutMs: 30_000 });
        try {
          const out: string[] = [];
          const result = await session.exec("uname -m; bash -c 'echo $BASH_VERSION'; git --version", {
            onStdout: (line) => out.push(line),
          });
          assert.equal(result.exitCode, 0);
          assert.equal(out[0], machine);
          assert.match(out[1] ?? "", /^5\./);
          assert.match(out[2] ?? "", /^git version /);
          log.info({ label, bootMs: vm.bootMs }, "booted");
        } finally {
          session.close();
        }
      } finally {
        await vm.destroy();
      }
    });
  }
});
