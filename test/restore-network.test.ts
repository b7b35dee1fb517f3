import assert from "node:assert/strict";
import { randomInt, randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ensureImage } from "@solstice/images";
import { createQemuBackend, type QemuVm } from "@solstice/vm";
import pino from "pino";
import { OutsideNetwork } from "./support/outside-network.ts";

const log = pino({ level: "warn" });
const runRoot = join(tmpdir(), `solstice-restore-net-${randomUUID().slice(0, 8)}`);

/** Tries `address:port` from the guest on the job's session: "open <first line>" or "closed". */
async function probeFromGuest(vm: QemuVm, address: string, port: number): Promise<string> {
  const session = vm.takeSession?.();
  assert.ok(session, "a restored tiny-fast guest serves the job's session on its agent's channel");
  try {
    const out: string[] = [];
    await session.exec(
      `if reply=$(timeout 5 bash -c 'exec 3<>/dev/tcp/${address}/${port} && head -n 1 <&3' 2>/dev/null); then echo "open $reply"; else echo closed; fi`,
      { onStdout: (line) => out.push(line) },
    );
    return out.join("\n");
  } finally {
    session.close();
  }
}

// A restored guest's QEMU starts before pasta has configured its namespace (the state loads
// meanwhile); the host prohibits the addresses the guest must not reach before it lets the guest
// run. Both halves are checked on restored guests: an address named unreachable is closed, the
// same address is open to a guest of a backend that names none.
describe("restored guests' network (tiny-fast, TCG)", { timeout: 600_000 }, () => {
  const outside = new OutsideNetwork();
  const port = 7_000 + randomInt(1_000);
  before(async () => {
    outside.start();
    await outside.run(
      `require("node:net").createServer((s) => s.end("hello-from-outside\\n")).listen(${port}, "${outside.address}", () => console.log("listening"))`,
    );
  });
  after(() => {
    outside.stop();
    rmSync(runRoot, { recursive: true, force: true });
  });

  test("an unreachable address is prohibited before the restored guest runs; without it the address answers", async () => {
    const image = await ensureImage("tiny-fast", { log });
    const results: Record<string, string> = {};
    for (const [name, unreachableHosts] of [
      ["guarded", [outside.address]],
      ["open", []],
    ] as const) {
      const backend = createQemuBackend({ runRoot, accelerator: "tcg", log, unreachableHosts });
      const vm = await backend.boot({ vmName: `restore-net-${name}`, image, log });
      try {
        assert.equal(vm.restored, true, "the guest was restored from the image's saved state");
        results[name] = await probeFromGuest(vm, outside.address, port);
      } finally {
        await vm.destroy();
      }
    }
    assert.deepEqual(results, { guarded: "closed", open: "open hello-from-outside" });
  });
});
