import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { probeAccelerator } from "@solstice/vm";
import pino from "pino";
import { tinyImage } from "./tiny-image.ts";

// Every branch of the probe, taken through its inputs (device path, CPU flags, a stand-in QEMU), so
// none depends on whether this machine has /dev/kvm, a broken one, or a working one.

const root = join(tmpdir(), `solstice-probe-${randomUUID()}`);
mkdirSync(root, { recursive: true });
after(() => rmSync(root, { recursive: true, force: true }));

function fresh(name: string): string {
  const dir = join(root, `${name}-${randomUUID()}`);
  mkdirSync(dir);
  return dir;
}

/** A device stand-in that opens read-write: the probe must go on to boot. */
function openableDevice(): string {
  const path = join(fresh("dev"), "kvm");
  writeFileSync(path, "");
  return path;
}

/**
 * A stand-in QEMU: answers --version with `version`, records the probe boot's arguments, then
 * behaves as `body` (a shell fragment) says.
 */
function fakeQemu(
  body: string,
  version = "QEMU emulator version 9.9.9 (stand-in)",
): { binary: string; argsFile: string } {
  const dir = fresh("qemu");
  const binary = join(dir, "qemu-system-x86_64");
  const argsFile = join(dir, "args");
  writeFileSync(
    binary,
    `#!/bin/sh\nif [ "$1" = "--version" ]; then echo '${version}'; exit 0; fi\necho "$@" > '${argsFile}'\n${body}\n`,
  );
  chmodSync(binary, 0o755);
  return { binary, argsFile };
}

function capture(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: pino({ level: "info" }, { write: (line: string) => lines.push(line) }), lines };
}

describe("the accelerator probe", () => {
  test("no KVM device: TCG, saying it is missing, and nothing cached", async () => {
    const cacheDir = fresh("cache");
    const { log, lines } = capture();
    const qemu = fakeQemu("echo booted");
    const missing = join(root, "no-such-dir", "kvm");
    const choice = await probeAccelerator({ cacheDir, log, kernel: "/k", kvmDevice: missing, qemuBinary: qemu.binary });
    assert.deepEqual(choice, { accelerator: "tcg", reason: `${missing} is missing` });
    assert.ok(lines.some((l) => l.includes('"accelerator":"tcg"') && l.includes(`using tcg: ${missing} is missing`)));
    assert.equal(existsSync(qemu.argsFile), false, "no probe boot without a device");
    assert.deepEqual(readdirSync(cacheDir), [], "a missing device is not a verdict worth caching");
  });

  test("a guest of another architecture: TCG at once, without a probe boot, and nothing cached", async () => {
    const cacheDir = fresh("cache");
    const { log } = capture();
    const qemu = fakeQemu("echo booted");
    const choice = await probeAccelerator({
      cacheDir,
      log,
      arch: "aarch64",
      hostArch: "x86_64",
      kernel: "/k",
      kvmDevice: openableDevice(),
      qemuBinary: qemu.binary,
    });
    assert.deepEqual(choice, {
      accelerator: "tcg",
      reason: "aarch64 guest on x86_64 host: KVM runs only the host's own architecture",
    });
    assert.equal(existsSync(qemu.argsFile), false);
    assert.deepEqual(readdirSync(cacheDir), []);
  });

  test("an aarch64 host probes KVM with its own machine and console", async () => {
    const qemu = fakeQemu("echo booted");
    const choice = await probeAccelerator({
      cacheDir: fresh("cache"),
      log: capture().log,
      arch: "aarch64",
      hostArch: "aarch64",
      kernel: "/k/Image",
      kvmDevice: openableDevice(),
      qemuBinary: qemu.binary,
    });
    assert.equal(choice.accelerator, "kvm");
    const args = readFileSync(qemu.argsFile, "utf8");
    assert.match(args, /-machine virt,gic-version=max -accel kvm -cpu host/);
    assert.match(args, /console=ttyAMA0/);
  });

  test("a device path that cannot be opened: TCG, saying so", async () => {
    const cacheDir = fresh("cache");
    const notADir = openableDevice();
    const device = join(notADir, "kvm"); // a path through a file: ENOTDIR, as a denied open would be
    const choice = await probeAccelerator({ cacheDir, log: capture().log, kernel: "/k", kvmDevice: device });
    assert.deepEqual(choice, { accelerator: "tcg", reason: `${device} is not accessible` });
    assert.deepEqual(readdirSync(cacheDir), []);
  });

  test("a device that opens but cannot run a guest: TCG with QEMU's reason, cached per QEMU version", async () => {
    const cacheDir = fresh("cache");
    const kvmDevice = openableDevice();
    const broken = fakeQemu("echo 'qemu-system-x86_64: failed to initialize kvm: Operation not permitted' >&2; exit 1");
    const { log, lines } = capture();
    const choice = await probeAccelerator({
      cacheDir,
      log,
      kernel: "/k/vmlinuz",
      kvmDevice,
      qemuBinary: broken.binary,
    });
    assert.equal(choice.accelerator, "tcg");
    assert.match(choice.reason, /exited \(1\) before the kernel printed anything: .*failed to initialize kvm/);
    assert.match(readFileSync(broken.argsFile, "utf8"), /-accel kvm -cpu host .*-kernel \/k\/vmlinuz/);
    assert.ok(lines.some((l) => l.includes("using tcg:")));
    assert.equal(readdirSync(cacheDir).length, 1, "the verdict of a real probe boot is cached");

    const again = await probeAccelerator({ cacheDir, log, kernel: "/k/vmlinuz", kvmDevice, qemuBinary: broken.binary });
    assert.equal(again.accelerator, "tcg");
    assert.match(again.reason, /failed to initialize kvm.*\(cached in /);

    // Another QEMU build is probed afresh: the cache is per host kernel and QEMU version.
    const working = fakeQemu("echo 'Linux version 6.1'; exec sleep 5", "QEMU emulator version 10.0.0 (stand-in)");
    const other = await probeAccelerator({
      cacheDir,
      log,
      kernel: "/k/vmlinuz",
      kvmDevice,
      qemuBinary: working.binary,
    });
    assert.deepEqual(other, { accelerator: "kvm", reason: "a probe kernel booted under KVM" });
    assert.equal(readdirSync(cacheDir).length, 2);
  });

  test("a guest that prints nothing within the deadline: TCG, saying how long it waited", async () => {
    const cacheDir = fresh("cache");
    const hung = fakeQemu("exec sleep 30");
    const started = Date.now();
    const choice = await probeAccelerator({
      cacheDir,
      log: capture().log,
      kernel: "/k",
      kvmDevice: openableDevice(),
      qemuBinary: hung.binary,
      deadlineMs: 300,
    });
    assert.deepEqual(choice, { accelerator: "tcg", reason: "a kernel under KVM printed nothing within 300 ms" });
    assert.ok(Date.now() - started < 5_000, "the hung QEMU was not waited for");
  });

  test("an aborted probe rejects and caches nothing", async () => {
    const cacheDir = fresh("cache");
    const hung = fakeQemu("exec sleep 30");
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("shutting down")), 200);
    await assert.rejects(
      probeAccelerator({
        cacheDir,
        log: capture().log,
        kernel: "/k",
        kvmDevice: openableDevice(),
        qemuBinary: hung.binary,
        signal: controller.signal,
      }),
      /shutting down/,
    );
    assert.deepEqual(readdirSync(cacheDir), []);
  });

  test("with no kernel to boot, the CPU flags decide and nothing is cached", async () => {
    const cacheDir = fresh("cache");
    const kvmDevice = openableDevice();
    const qemu = fakeQemu("echo booted");
    const flags = (text: string) => {
      const path = join(fresh("cpuinfo"), "cpuinfo");
      writeFileSync(path, text);
      return path;
    };
    const log = capture().log;
    const withVmx = await probeAccelerator({
      cacheDir,
      log,
      kvmDevice,
      qemuBinary: qemu.binary,
      cpuinfoPath: flags("flags\t\t: fpu vme de pse vmx sse2\n"),
    });
    assert.deepEqual(withVmx, {
      accelerator: "kvm",
      reason: `${kvmDevice} opens and the CPU has vmx/svm (no kernel to probe with)`,
    });
    const without = await probeAccelerator({
      cacheDir,
      log,
      kvmDevice,
      qemuBinary: qemu.binary,
      cpuinfoPath: flags("flags\t\t: fpu vme de pse sse2 hypervisor\n"),
    });
    assert.equal(without.accelerator, "tcg");
    assert.match(without.reason, /no vmx\/svm flag/);
    assert.equal(existsSync(qemu.argsFile), false);
    assert.deepEqual(readdirSync(cacheDir), []);
  });

  test("on this host, with the real QEMU and device, the verdict matches what the host has", {
    timeout: 60_000,
  }, async (t) => {
    const cacheDir = fresh("cache");
    const image = await tinyImage();
    const kernel = image.kernel?.path ?? "";
    const first = await probeAccelerator({ cacheDir, log: capture().log, kernel });
    t.diagnostic(`this host: ${first.accelerator} (${first.reason})`);
    if (!existsSync("/dev/kvm")) {
      assert.deepEqual(first, { accelerator: "tcg", reason: "/dev/kvm is missing" });
      return;
    }
    // A device that opens was probed by a real boot, whichever way it went, and that is cached.
    const second = await probeAccelerator({ cacheDir, log: capture().log, kernel });
    assert.equal(second.accelerator, first.accelerator);
    assert.match(second.reason, /\(cached in /);
  });
});
