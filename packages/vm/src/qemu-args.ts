import type { LocalImage } from "@solstice/images";
import type { Accelerator } from "./accelerator-probe.ts";
import { archExtraArgs, cpuOption, machineOption } from "./guest-machine.ts";

/**
 * Where a QEMU guest reaches its host: the user-mode network's gateway, which QEMU maps to the
 * loopback of the VM's network namespace (the ports forwarded to the host live there).
 */
export const GUEST_GATEWAY_ADDRESS = "10.0.2.2";

export interface QemuArgsInput {
  image: LocalImage;
  accelerator: Accelerator;
  cpus: number;
  memoryMiB: number;
  overlayPath: string;
  /** The NoCloud seed; absent for images whose keys come from the key agent. */
  seedPath?: string;
  qmpSocket: string;
  sshPort: number;
  /** The key agent's virtio-serial socket (images with `keys: agent`). */
  agentSocket?: string;
  /** The host's TSC rate in kHz: given to a microvm guest under TCG as `tsc_early_khz`. */
  hostTscKhz?: number;
  /** A saved guest state to restore instead of booting (`-incoming`). */
  incomingState?: string;
  /**
   * Whether a guest under TCG keeps its processes' address randomization (default false: its
   * kernel gets `norandmaps`; decision 0012). Under KVM the guest's own setting always holds.
   */
  tcgAddressRandomization?: boolean;
}

/**
 * The QEMU command line for one job VM. The serial console goes to stdout (read line by line by the
 * backend); the guest's SSH is forwarded from 127.0.0.1:sshPort inside the VM's network namespace.
 * A restore must see exactly the machine and devices its state was saved with, so everything but
 * file paths, the SSH port and `-incoming` depends on the image, accelerator, CPUs and memory only.
 */
export function qemuArgs(input: QemuArgsInput): string[] {
  const { image } = input;
  // microvm has no PCI bus: its devices are the virtio-mmio variants. virt (aarch64, riscv64)
  // has PCIe: the same virtio-pci devices as q35.
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
    machineOption(image.arch, image.machine),
    ...archExtraArgs(image.arch, input.accelerator),
    "-accel",
    input.accelerator,
    "-cpu",
    cpuOption(image.arch, input.accelerator),
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
  if (input.seedPath === undefined) {
    // No seed: nothing else can bring keys, so an agent image without its socket is a caller bug.
    if (image.keys !== "agent" || input.agentSocket === undefined) {
      throw new Error(`image ${image.label} needs a seed (keys: seed) or an agent socket (keys: agent)`);
    }
  } else if (image.seedMedium === "cdrom") {
    args.push("-drive", `file=${input.seedPath},media=cdrom,format=raw,readonly=on`);
  } else {
    args.push(
      "-drive",
      `file=${input.seedPath},if=none,id=seed0,format=raw,readonly=on`,
      "-device",
      `virtio-blk-${bus},drive=seed0`,
    );
  }
  if (input.agentSocket !== undefined) {
    args.push(
      "-device",
      `virtio-serial-${bus}`,
      "-chardev",
      `socket,id=agent0,path=${input.agentSocket},server=on,wait=off`,
      "-device",
      "virtserialport,chardev=agent0,name=ci.agent",
    );
  }
  if (image.kernel) {
    // PVH is an x86 entry point; the catalog refuses it for other arches.
    const kernel = image.kernelEntry === "pvh" && image.kernel.pvh ? image.kernel.pvh : image.kernel.path;
    args.push("-kernel", kernel, "-append", kernelCommandLine(input));
    if (image.kernel.initrd) args.push("-initrd", image.kernel.initrd);
  }
  if (input.incomingState !== undefined) {
    if (input.incomingState.includes("'")) throw new Error(`unusable state file path: ${input.incomingState}`);
    // QEMU 7.2 has no file: migration URI; `exec:` runs the command through /bin/sh. `-S`: the
    // guest stays paused once loaded until it is resumed (`cont`), after the host has made the
    // VM's network namespace safe (netns-launch.ts, held guests).
    args.push("-S", "-incoming", `exec:cat '${input.incomingState}'`);
  }
  return args;
}

function kernelCommandLine(input: QemuArgsInput): string {
  const { image } = input;
  const words = [image.kernel?.append ?? "", ...(image.kernelArgs ?? [])].filter((w) => w !== "");
  // microvm has neither HPET nor the ACPI PM timer to calibrate the TSC against, and the PIT loop
  // hangs now and then under TCG; there the guest TSC ticks at the host's rate, so it is given.
  if (image.machine === "microvm" && input.accelerator === "tcg" && input.hostTscKhz !== undefined) {
    words.push(`tsc_early_khz=${input.hostTscKhz}`);
  }
  // QEMU 7.2's TCG finds translated code by guest virtual address: with every process's binary and
  // libraries at random addresses, each new process translates them again (20 `bash -c :` took
  // 4.1-5.1 s with randomization, 1.6 s without, on a tiny guest; decision 0012).
  if (input.accelerator === "tcg" && input.tcgAddressRandomization !== true) words.push("norandmaps");
  return words.join(" ");
}
