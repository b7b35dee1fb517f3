import type { CatalogEntry } from "./catalog.ts";
import type { GuestArch } from "./guest-arch.ts";

/**
 * A guest image ready to boot on this host: what the VM backend needs to start it and to know
 * when it is ready. Produced by the image builders (local guests) and, later, by the catalog
 * download path (`images.yaml`).
 */
export interface LocalImage {
  /** The label jobs ask for in `runs-on`, e.g. "tiny" or "debian-12". */
  readonly label: string;
  /** Absolute path of the golden disk; every VM gets its own qcow2 overlay on it. */
  readonly disk: string;
  readonly diskFormat: "qcow2" | "raw";
  /**
   * Direct kernel boot (`-kernel/-initrd/-append`), for locally built guests that carry their
   * own kernel. Absent for self-bootable disks, which the firmware boots like a cloud image.
   */
  readonly kernel?: {
    readonly path: string;
    readonly initrd?: string;
    readonly append: string;
    /**
     * The same kernel uncompressed, as an ELF with a PVH entry note (Xen note 0x12), when the
     * recipe found one: QEMU enters it directly, skipping firmware setup and the decompressor.
     */
    readonly pvh?: string;
  };
  /** The guest's CPU architecture: which QEMU system emulator runs it, and whether KVM can. */
  readonly arch: GuestArch;
  /** QEMU machine type the image is known to boot on (`virt` for aarch64 and riscv64). */
  readonly machine: "q35" | "pc" | "microvm" | "virt";
  /** How the NoCloud seed is attached: a CD-ROM (like cloud images expect) or a virtio disk. */
  readonly seedMedium: "cdrom" | "virtio";
  /**
   * When the guest is ready for steps: as soon as SSH answers with our pinned host key, or only
   * once `cloud-init status --wait` has finished in the guest.
   */
  readonly readiness: "ssh" | "cloud-init";
  /** The account steps run as (key login, passwordless root or sudo). */
  readonly sshUser: string;
  /**
   * How the kernel is loaded when the image has one: the bzImage (`path`, the default) or the
   * PVH ELF (`kernel.pvh`, used only when the recipe found the PVH note).
   */
  readonly kernelEntry?: "bzimage" | "pvh";
  /** Kernel arguments appended to `kernel.append` (images.yaml `kernelArgs`). */
  readonly kernelArgs?: readonly string[];
  /**
   * How the per-job keys reach the guest: the NoCloud seed (the default), or the guest's key agent
   * over the virtio-serial port `ci.agent` after boot (our own images; no seed is attached).
   */
  readonly keys?: "seed" | "agent";
  /**
   * Whether jobs start from a saved booted-and-idle guest (a snapshot restored per job) instead of
   * a cold boot. Needs `keys: agent`: a restored guest cannot re-read a seed.
   */
  readonly snapshot?: boolean;
  readonly defaultCpus: number;
  readonly defaultMemoryMiB: number;
  /** Hash of the recipe that built it; part of the cache key. */
  readonly recipeHash: string;
  /** Node runtimes the image has of its own (images.yaml `node:`): guest paths by major. */
  readonly node?: Readonly<Partial<Record<"20" | "24", string>>>;
}

/** Progress of a long image operation (build, download), for a progress bar or log lines. */
export type ImageProgress = (event: { phase: string; detail?: string; fraction?: number }) => void;

/**
 * An image that is one disk made elsewhere (a download, an operator's zvol), booted the way its
 * catalog entry says, with the entry's user, readiness, default size and Node.
 */
export function catalogDiskImage(
  entry: CatalogEntry,
  disk: { path: string; format: LocalImage["diskFormat"]; recipeHash: string },
): LocalImage {
  return {
    label: entry.label,
    disk: disk.path,
    diskFormat: disk.format,
    arch: entry.arch,
    machine: entry.boot.machine,
    seedMedium: entry.boot.seedMedium,
    readiness: entry.boot.readiness,
    sshUser: entry.boot.sshUser,
    defaultCpus: entry.defaults.cpus,
    defaultMemoryMiB: entry.defaults.memoryMiB,
    recipeHash: disk.recipeHash,
    ...(entry.node ? { node: entry.node } : {}),
  };
}
