import type { GuestArch } from "@solstice/images";
import type { Accelerator } from "./accelerator-probe.ts";

/**
 * What QEMU needs to know about a guest's architecture: its system emulator, its machine, its CPU
 * model and its serial console. x86_64 guests choose their machine in images.yaml (q35, pc,
 * microvm); aarch64 and riscv64 guests boot on `virt`, QEMU's generic PCIe board for both, with
 * their kernel loaded directly (on aarch64 QEMU's own boot stub, on riscv64 OpenSBI, shipped in
 * qemu-system-data, as the firmware that hands over to it).
 */
interface ArchQemu {
  /** The machine option for `virt` guests (x86 guests use their image's machine as is). */
  readonly virtMachine?: string;
  /** `-cpu` under TCG; under KVM it is always `host`. */
  readonly tcgCpu: string;
  /** The serial console the kernel writes to (`console=`). */
  readonly console: string;
  /** Machine for the accelerator probe's console-only boot. */
  readonly probeMachine: string;
  /** Extra arguments every VM of the arch gets, per accelerator. */
  readonly extraArgs: Readonly<Record<Accelerator, readonly string[]>>;
}

const archQemu: Readonly<Record<GuestArch, ArchQemu>> = {
  x86_64: { tcgCpu: "max", console: "ttyS0", probeMachine: "pc", extraArgs: { kvm: [], tcg: [] } },
  // gic-version=max: GICv3 where the accelerator offers it (KVM on most arm64 hosts, TCG always),
  // else GICv2. pauth-impdef=on: TCG emulates pointer authentication with QEMU's own cheap hash
  // instead of the architected QARMA cipher; the Debian kernel signs every return address, and
  // the tiny guest took 78 s to reach SSH with QARMA against 33 s with this (measured, no seed).
  aarch64: {
    virtMachine: "virt,gic-version=max",
    tcgCpu: "max,pauth-impdef=on",
    console: "ttyAMA0",
    probeMachine: "virt,gic-version=max",
    extraArgs: { kvm: [], tcg: [] },
  },
  // Under TCG, -bios default is OpenSBI: the M-mode firmware (SBI) the kernel runs on. Under KVM
  // the host kernel provides the SBI, and QEMU wants no firmware (not tried: no riscv64 host).
  riscv64: {
    virtMachine: "virt",
    tcgCpu: "rv64",
    console: "ttyS0",
    probeMachine: "virt",
    extraArgs: { kvm: ["-bios", "none"], tcg: ["-bios", "default"] },
  },
};

/** The QEMU system emulator for guests of `arch`: Debian's qemu-system-x86, -arm, -misc. */
export function qemuSystemBinary(arch: GuestArch): string {
  return `qemu-system-${arch}`;
}

/** The Debian package that carries `qemuSystemBinary(arch)`, for error hints. */
export function qemuSystemPackage(arch: GuestArch): string {
  return { x86_64: "qemu-system-x86", aarch64: "qemu-system-arm", riscv64: "qemu-system-misc" }[arch];
}

/** The `-machine` value of an image's guest. */
export function machineOption(arch: GuestArch, machine: "q35" | "pc" | "microvm" | "virt"): string {
  const virt = archQemu[arch].virtMachine;
  if ((machine === "virt") !== (virt !== undefined)) {
    throw new Error(`a ${arch} guest cannot boot on the ${machine} machine`);
  }
  return virt ?? machine;
}

export function cpuOption(arch: GuestArch, accelerator: Accelerator): string {
  return accelerator === "kvm" ? "host" : archQemu[arch].tcgCpu;
}

export function archExtraArgs(arch: GuestArch, accelerator: Accelerator): readonly string[] {
  return archQemu[arch].extraArgs[accelerator];
}

export function serialConsole(arch: GuestArch): string {
  return archQemu[arch].console;
}

export function probeMachine(arch: GuestArch): string {
  return archQemu[arch].probeMachine;
}
