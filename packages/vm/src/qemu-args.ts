import type { LocalImage } from "@solstice/images";
import type { Accelerator } from "./accelerator-probe.ts";

export interface QemuArgsInput {
  image: LocalImage;
  accelerator: Accelerator;
  cpus: number;
  memoryMiB: number;
  overlayPath: string;
  seedPath: string;
  qmpSocket: string;
  sshPort: number;
}

/**
 * The QEMU command line for one job VM. The serial console goes to stdout (read line by line by the
 * backend); the guest's SSH is forwarded from 127.0.0.1:sshPort inside the VM's network namespace.
 */
export function qemuArgs(input: QemuArgsInput): string[] {
  const { image } = input;
  // microvm has no PCI bus: its devices are the virtio-mmio variants.
  const bus = image.machine === "microvm" ? "device" : "pci";
  const args = [
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-monitor",
    "none",
    "-serial",
    "stdio",
    "-machine",
    image.machine,
    "-accel",
    input.accelerator,
    "-cpu",
    input.accelerator === "kvm" ? "host" : "max",
    "-m",
    String(input.memoryMiB),
    "-smp",
    String(input.cpus),
    "-netdev",
    `user,id=n0,hostfwd=tcp:127.0.0.1:${input.sshPort}-:22`,
    "-device",
    `virtio-net-${bus},netdev=n0${bus === "pci" ? ",romfile=" : ""}`,
    "-device",
    `virtio-rng-${bus}`,
    "-qmp",
    `unix:${input.qmpSocket},server=on,wait=off`,
    "-drive",
    `file=${input.overlayPath},if=none,id=disk0,format=qcow2,discard=unmap`,
    "-device",
    `virtio-blk-${bus},drive=disk0`,
  ];
  if (image.seedMedium === "cdrom") {
    args.push("-drive", `file=${input.seedPath},media=cdrom,format=raw,readonly=on`);
  } else {
    args.push(
      "-drive",
      `file=${input.seedPath},if=none,id=seed0,format=raw,readonly=on`,
      "-device",
      `virtio-blk-${bus},drive=seed0`,
    );
  }
  if (image.kernel) {
    args.push("-kernel", image.kernel.path, "-append", image.kernel.append);
    if (image.kernel.initrd) args.push("-initrd", image.kernel.initrd);
  }
  return args;
}
