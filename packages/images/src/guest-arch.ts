/**
 * Guest CPU architectures, named as the guest's `uname -m` names them (and as QEMU names its
 * system emulators: qemu-system-x86_64, qemu-system-aarch64, qemu-system-riscv64).
 */
export const guestArches = ["x86_64", "aarch64", "riscv64"] as const;
export type GuestArch = (typeof guestArches)[number];

/** Node's name for each CPU architecture a guest can have. */
const fromNode: Readonly<Record<string, GuestArch>> = { x64: "x86_64", arm64: "aarch64", riscv64: "riscv64" };

/** This host's own architecture, or undefined on one no guest of ours has (it then runs all under TCG). */
export function hostArch(nodeArch: string = process.arch): GuestArch | undefined {
  return fromNode[nodeArch];
}
