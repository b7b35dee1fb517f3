import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { LocalImage } from "@solstice/images";
import { hostTscKhz } from "../src/host-tsc.ts";
import { type QemuArgsInput, qemuArgs } from "../src/qemu-args.ts";
import { templateKey } from "../src/snapshot.ts";

const tiny: LocalImage = {
  label: "tiny",
  disk: "/img/tiny/disk.qcow2",
  diskFormat: "qcow2",
  kernel: { path: "/img/tiny/vmlinuz", initrd: "/img/tiny/initramfs.cpio", append: "console=ttyS0 quiet" },
  arch: "x86_64",
  machine: "q35",
  seedMedium: "virtio",
  readiness: "ssh",
  sshUser: "root",
  defaultCpus: 1,
  defaultMemoryMiB: 512,
  recipeHash: "0123456789abcdef",
};

const fast: LocalImage = {
  ...tiny,
  label: "tiny-fast",
  kernel: { ...(tiny.kernel as NonNullable<LocalImage["kernel"]>), pvh: "/img/tiny/vmlinux" },
  machine: "microvm",
  kernelEntry: "pvh",
  keys: "agent",
  snapshot: true,
};

const base = (image: LocalImage, more: Partial<QemuArgsInput> = {}): QemuArgsInput => ({
  image,
  accelerator: "tcg",
  cpus: 1,
  memoryMiB: 512,
  overlayPath: "/run/vm/overlay.qcow2",
  qmpSocket: "/run/vm/qmp.sock",
  sshPort: 2222,
  hostTscKhz: 2_300_000,
  ...more,
});

/** The value after each occurrence of `flag`. */
const valuesOf = (args: string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ""] : []));
const appendOf = (args: string[]) => valuesOf(args, "-append")[0] ?? "";

const arm64: LocalImage = {
  ...tiny,
  label: "tiny-arm64",
  kernel: { path: "/img/arm/vmlinuz", initrd: "/img/arm/initramfs.cpio", append: "console=ttyAMA0 quiet" },
  arch: "aarch64",
  machine: "virt",
};
const riscv64: LocalImage = { ...arm64, label: "tiny-riscv64", arch: "riscv64" };

describe("QEMU arguments per guest architecture", () => {
  test("aarch64 under TCG: virt with the best GIC, cheap pointer authentication, PCI devices, its console", () => {
    const args = qemuArgs(base(arm64, { seedPath: "/run/vm/seed.img" }));
    assert.deepEqual(valuesOf(args, "-machine"), ["virt,gic-version=max"]);
    assert.deepEqual(valuesOf(args, "-cpu"), ["max,pauth-impdef=on"]);
    assert.ok(valuesOf(args, "-device").includes("virtio-blk-pci,drive=seed0"));
    assert.equal(appendOf(args), "console=ttyAMA0 quiet norandmaps", "no x86 TSC hint");
    assert.deepEqual(valuesOf(args, "-bios"), []);
  });

  test("riscv64 runs on OpenSBI under TCG and on the host's SBI under KVM", () => {
    const tcg = qemuArgs(base(riscv64, { seedPath: "/s" }));
    assert.deepEqual(valuesOf(tcg, "-machine"), ["virt"]);
    assert.deepEqual(valuesOf(tcg, "-cpu"), ["rv64"]);
    assert.deepEqual(valuesOf(tcg, "-bios"), ["default"]);
    const kvm = qemuArgs(base(riscv64, { seedPath: "/s", accelerator: "kvm" }));
    assert.deepEqual(valuesOf(kvm, "-cpu"), ["host"]);
    assert.deepEqual(valuesOf(kvm, "-bios"), ["none"]);
  });

  test("an image whose machine does not fit its architecture is refused", () => {
    assert.throws(() => qemuArgs(base({ ...arm64, machine: "q35" }, { seedPath: "/s" })), /cannot boot on the q35/);
    assert.throws(() => qemuArgs(base({ ...tiny, machine: "virt" }, { seedPath: "/s" })), /cannot boot on the virt/);
  });
});

describe("QEMU arguments per image boot settings", () => {
  test("the tiny image keeps its boot path: q35, PCI devices, bzImage, seed disk, no TSC hint", () => {
    const args = qemuArgs(base(tiny, { seedPath: "/run/vm/seed.img" }));
    assert.deepEqual(valuesOf(args, "-machine"), ["q35"]);
    assert.deepEqual(valuesOf(args, "-kernel"), ["/img/tiny/vmlinuz"]);
    assert.equal(appendOf(args), "console=ttyS0 quiet norandmaps");
    assert.ok(valuesOf(args, "-device").includes("virtio-net-pci,netdev=n0,romfile="));
    assert.ok(valuesOf(args, "-device").includes("virtio-blk-pci,drive=seed0"));
    assert.ok(!args.includes("-incoming"));
    assert.ok(!valuesOf(args, "-device").some((d) => d.startsWith("virtio-serial")));
  });

  test("microvm under TCG: virtio-mmio devices, PVH kernel, agent port, no seed, tsc_early_khz", () => {
    const args = qemuArgs(base(fast, { agentSocket: "/run/vm/ag.sock" }));
    assert.deepEqual(valuesOf(args, "-machine"), ["microvm"]);
    const devices = valuesOf(args, "-device");
    assert.deepEqual(devices, [
      "virtio-net-device,netdev=n0",
      "virtio-rng-device",
      "virtio-blk-device,drive=disk0",
      "virtio-serial-device",
      "virtserialport,chardev=agent0,name=ci.agent",
    ]);
    assert.deepEqual(valuesOf(args, "-chardev"), ["socket,id=agent0,path=/run/vm/ag.sock,server=on,wait=off"]);
    assert.deepEqual(valuesOf(args, "-kernel"), ["/img/tiny/vmlinux"]);
    assert.deepEqual(valuesOf(args, "-initrd"), ["/img/tiny/initramfs.cpio"]);
    assert.equal(appendOf(args), "console=ttyS0 quiet tsc_early_khz=2300000 norandmaps");
    assert.ok(!args.some((a) => a.includes("seed")));
  });

  test("microvm under KVM gets no TSC hint; q35 under TCG neither", () => {
    assert.ok(!appendOf(qemuArgs(base(fast, { agentSocket: "/a", accelerator: "kvm" }))).includes("tsc_early_khz"));
    const q35 = { ...fast, machine: "q35" as const };
    assert.ok(!appendOf(qemuArgs(base(q35, { agentSocket: "/a" }))).includes("tsc_early_khz"));
    assert.ok(valuesOf(qemuArgs(base(q35, { agentSocket: "/a" })), "-device").includes("virtio-serial-pci"));
  });

  test("under TCG the guest's processes get fixed addresses unless asked to keep randomization; KVM is left alone", () => {
    const words = (input: Partial<QemuArgsInput>) =>
      appendOf(qemuArgs(base(fast, { agentSocket: "/a", ...input }))).split(" ");
    assert.ok(words({}).includes("norandmaps"));
    assert.ok(!words({ tcgAddressRandomization: true }).includes("norandmaps"));
    assert.ok(!words({ accelerator: "kvm" }).includes("norandmaps"));
  });

  test("PVH asked for but not built: the bzImage", () => {
    const noPvh: LocalImage = { ...fast, kernel: { path: "/img/k/vmlinuz", append: "console=ttyS0" } };
    assert.deepEqual(valuesOf(qemuArgs(base(noPvh, { agentSocket: "/a" })), "-kernel"), ["/img/k/vmlinuz"]);
    const bz: LocalImage = { ...fast, kernelEntry: "bzimage" };
    assert.deepEqual(valuesOf(qemuArgs(base(bz, { agentSocket: "/a" })), "-kernel"), ["/img/tiny/vmlinuz"]);
  });

  test("catalog kernel arguments are appended before the TSC hint", () => {
    const image: LocalImage = { ...fast, kernelArgs: ["loglevel=1", "ci.x=1"] };
    assert.equal(
      appendOf(qemuArgs(base(image, { agentSocket: "/a" }))),
      "console=ttyS0 quiet loglevel=1 ci.x=1 tsc_early_khz=2300000 norandmaps",
    );
  });

  test("a restore adds a held -incoming and nothing else changes but paths and port", () => {
    const boot = qemuArgs(
      base(fast, { agentSocket: "/run/a/ag.sock", overlayPath: "/run/a/overlay.qcow2", qmpSocket: "/run/a/qmp.sock" }),
    );
    const restore = qemuArgs(
      base(fast, {
        agentSocket: "/run/b/ag.sock",
        overlayPath: "/run/b/overlay.qcow2",
        qmpSocket: "/run/b/qmp.sock",
        sshPort: 3333,
        incomingState: "/cache/tiny-fast.state",
      }),
    );
    // Held (-S): the guest runs only once the host resumes it.
    assert.deepEqual(restore.slice(-3), ["-S", "-incoming", "exec:cat '/cache/tiny-fast.state'"]);
    assert.equal(restore.length, boot.length + 3);
    const strip = (a: string) => a.replace(/\/run\/[ab]\//g, "/run/x/").replace(/\b(2222|3333)\b/, "PORT");
    assert.deepEqual(restore.slice(0, -3).map(strip), boot.map(strip));
    assert.throws(() => qemuArgs(base(fast, { agentSocket: "/a", incomingState: "/it's" })));
  });

  test("an agent image with neither seed nor agent socket is refused", () => {
    assert.throws(() => qemuArgs(base(fast)), /needs a seed/);
    assert.throws(() => qemuArgs(base(tiny)), /needs a seed/);
  });
});

describe("snapshot template key", () => {
  const key = (more: Partial<Parameters<typeof templateKey>[0]> = {}) =>
    templateKey({
      image: fast,
      accelerator: "tcg",
      cpus: 1,
      memoryMiB: 512,
      hostTscKhz: 2_300_000,
      qemuVersion: "7.2.22",
      ...more,
    });

  test("changes with everything a restore must match", () => {
    const k = key();
    assert.match(k, /^[0-9a-f]{16}$/);
    assert.equal(key(), k);
    assert.notEqual(key({ memoryMiB: 1024 }), k);
    assert.notEqual(key({ cpus: 2 }), k);
    assert.notEqual(key({ qemuVersion: "8.0.0" }), k);
    assert.notEqual(key({ hostTscKhz: 2_000_000 }), k);
    assert.notEqual(key({ image: { ...fast, recipeHash: "fedcba9876543210" } }), k);
    assert.notEqual(key({ accelerator: "kvm" }), k);
    assert.notEqual(key({ tcgAddressRandomization: true }), k);
  });
});

describe("host TSC rate", () => {
  test("read from cpuinfo when the TSC is constant", () => {
    assert.equal(hostTscKhz("flags\t\t: fpu tsc constant_tsc nonstop_tsc\ncpu MHz\t\t: 2300.000\n"), 2_300_000);
    assert.equal(hostTscKhz("flags\t\t: fpu tsc\ncpu MHz\t\t: 2300.000\n"), undefined);
    assert.equal(hostTscKhz("flags\t\t: constant_tsc\n"), undefined);
  });
});
