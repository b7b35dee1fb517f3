import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ensureImage } from "@solstice/images";
import { connectSsh } from "@solstice/ssh";
import { createQemuBackend, type QemuVm } from "@solstice/vm";
import pino from "pino";

const log = pino({ level: "warn" });
const runRoot = join(tmpdir(), `solstice-arch-restore-${randomUUID().slice(0, 8)}`);
after(() => rmSync(runRoot, { recursive: true, force: true }));

/** Runs `script` on the session the guest served on its agent's channel (else one over TCP). */
async function run(vm: QemuVm, script: string): Promise<string[]> {
  const session = vm.takeSession?.() ?? (await connectSsh(vm.ssh, { readyTimeoutMs: 30_000 }));
  try {
    const out: string[] = [];
    const result = await session.exec(script, { onStdout: (l) => out.push(l) });
    assert.equal(result.exitCode, 0);
    return out;
  } finally {
    session.close();
  }
}

test("an aarch64 guest restored twice from one saved state (virt, TCG): each its own keys, name and randomness", {
  timeout: 600_000,
}, async (t) => {
  const image = await ensureImage("tiny-arm64-fast", { log });
  assert.equal(image.arch, "aarch64");
  const backend = createQemuBackend({ runRoot, log });
  const seen: { random: string; hostKey: string }[] = [];
  // One guest at a time: this machine's other tests run VMs too.
  for (const name of ["arm-restore-a", "arm-restore-b"]) {
    const vm = await backend.boot({ vmName: name, image, log });
    try {
      assert.equal(vm.restored, true);
      assert.equal(vm.accelerator, "tcg");
      const [arch, random, hostname] = await run(
        vm,
        "uname -m; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; hostname",
      );
      assert.equal(arch, "aarch64");
      assert.match(random ?? "", /^[0-9a-f]{32}$/);
      assert.equal(hostname, name);
      seen.push({ random: random ?? "", hostKey: vm.ssh.hostKey });
      t.diagnostic(`${name}: restored and ready in ${vm.bootMs} ms`);
    } finally {
      await vm.destroy();
    }
  }
  const [a, b] = seen;
  assert.ok(a && b);
  assert.notEqual(a.random, b.random, "restored clones produced the same /dev/urandom bytes");
  assert.notEqual(a.hostKey, b.hostKey);
});
