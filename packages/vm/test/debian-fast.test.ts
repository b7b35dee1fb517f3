import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ensureImage } from "@solstice/images";
import { connectSsh } from "@solstice/ssh";
import { createQemuBackend, type QemuVm } from "@solstice/vm";
import pino from "pino";

const log = pino({ level: "warn" });
const runRoot = join(tmpdir(), `solstice-debfast-${randomUUID().slice(0, 8)}`);
after(() => rmSync(runRoot, { recursive: true, force: true }));

/**
 * Runs `script` in the guest's login shell over SSH with the VM's pinned host key; stdout lines.
 * On the session the guest served on its agent's channel, as a job does (port 22's listener, for
 * debug access, starts a second after it), else over TCP.
 */
async function run(vm: QemuVm, script: string): Promise<string[]> {
  const session = vm.takeSession?.() ?? (await connectSsh(vm.ssh, { readyTimeoutMs: 30_000 }));
  try {
    const out: string[] = [];
    const err: string[] = [];
    const result = await session.exec(script, { onStdout: (l) => out.push(l), onStderr: (l) => err.push(l) });
    assert.equal(result.exitCode, 0, `guest command failed: ${err.join("\n")}`);
    return out;
  } finally {
    session.close();
  }
}

/** What makes a guest its own, and what a step starts with, one item per line. */
const PROBE = [
  "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo",
  "hostname",
  "cat /etc/hostname",
  "cat /etc/machine-id",
  "date +%s",
  // What a step's environment starts from (GitHub's runners: HOME, PATH, the user, C.UTF-8).
  'printf "%s\\n" "$HOME" "$USER" "$PATH" "$LANG"',
  // systemd finished its boot with no failed unit, the journal in memory, no seed file credited.
  "systemctl is-system-running || systemctl --failed --no-legend",
  'test -d /run/log/journal && test -z "$(ls -A /var/log/journal 2>/dev/null)" && echo journal-volatile || echo journal-on-disk',
  "systemctl is-enabled systemd-random-seed.service || true",
  // A distribution people build on.
  "for p in python3 gcc make git curl; do command -v $p >/dev/null || echo missing-$p; done; test -s /etc/ssl/certs/ca-certificates.crt && echo tools-present",
  "free -m | sed -n 2p",
].join("\n");

describe("debian-12-fast", { timeout: 900_000 }, () => {
  test("two guests restored from one snapshot differ in entropy, hostname, machine-id, host key and get the host's clock", async (t) => {
    const image = await ensureImage("debian-12-fast", { log });
    assert.equal(image.machine, "microvm");
    const backend = createQemuBackend({ runRoot, accelerator: "tcg", log });
    const seen: { random: string; hostname: string; machineId: string; hostKey: string }[] = [];
    // One guest at a time: this machine's other tests run VMs too.
    for (const name of ["debian-fast-a", "debian-fast-b"]) {
      const vm = await backend.boot({ vmName: name, image, log });
      try {
        assert.equal(vm.restored, true);
        const lines = await run(vm, PROBE);
        const hostNow = Math.floor(Date.now() / 1000);
        const [random, hostname, hostnameFile, machineId, clock, home, user, path, lang, state, journal, seed] = lines;
        const [tools, free] = lines.slice(12);
        t.diagnostic(`${name}: free -m after restore: ${free}`);
        assert.match(random ?? "", /^[0-9a-f]{32}$/);
        assert.equal(hostnameFile, hostname);
        assert.match(machineId ?? "", /^[0-9a-f]{32}$/);
        // The template's clock is behind by the time since it was saved; TIME set it to the host's.
        const skew = Number(clock) - hostNow;
        assert.ok(skew <= 2 && skew >= -15, `guest clock off by ${skew} s`);
        assert.deepEqual([home, user, lang], ["/root", "root", "C.UTF-8"]);
        assert.equal(path, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        assert.equal(state, "running", `systemd is ${state}; failed units: ${lines.slice(9).join(" | ")}`);
        assert.equal(journal, "journal-volatile");
        assert.equal(seed, "masked");
        assert.equal(tools, "tools-present");
        seen.push({
          random: random ?? "",
          hostname: hostname ?? "",
          machineId: machineId ?? "",
          hostKey: vm.ssh.hostKey,
        });
      } finally {
        await vm.destroy();
      }
    }
    const [a, b] = seen;
    assert.ok(a && b);
    assert.notEqual(a.random, b.random, "restored clones produced the same /dev/urandom bytes");
    assert.notEqual(a.machineId, b.machineId, "restored clones share a machine-id");
    // Each login above pinned its own host key, so each guest served the key it was given.
    assert.notEqual(a.hostKey, b.hostKey);
    assert.deepEqual([a.hostname, b.hostname], ["debian-fast-a", "debian-fast-b"]);
  });
});
