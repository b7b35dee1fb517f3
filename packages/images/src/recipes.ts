import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { GuestArch } from "./guest-arch.ts";
import type { LocalImage } from "./local-image.ts";

const recipesDir = fileURLToPath(new URL("../recipes/", import.meta.url));

/** How to build one local guest image and what the result looks like to a VM backend. */
export interface ImageRecipe {
  readonly label: string;
  readonly aliases: readonly string[];
  /** The architecture of the guest it builds. */
  readonly arch: GuestArch;
  /** The build script in `recipes/`, run as `bash SCRIPT OUT_DIR SCRATCH_DIR`. */
  readonly script: string;
  /** Whether the build must run as root (debootstrap's chroot). */
  readonly needsRoot: boolean;
  /** Other files in `recipes/` the build reads; part of the recipe hash. */
  readonly inputs: Readonly<Record<string, string>>;
  /** The build's deadline when the caller gives none (default: ensureLocalImage's, 20 minutes). */
  readonly buildTimeoutMs?: number;
  /** Builder parameters, passed as environment variables; part of the recipe hash. */
  readonly params: Readonly<Record<string, string>>;
  /** Environment that does not change the result (caches), so not hashed. */
  cacheEnv(cacheDir: string): Record<string, string>;
  /**
   * The manifest of an image built into `dir`; `built(name)` says whether the build produced that
   * optional file.
   */
  describe(dir: string, recipeHash: string, built: (name: string) => boolean): LocalImage;
}

/** What differs between the tiny guests of each architecture (tiny.sh's parameters). */
interface TinyArch {
  /** Debian's name of the architecture. */
  readonly debArch: string;
  readonly suite: string;
  /** The kernel meta-package; the build resolves the concrete kernel it points at. */
  readonly kernelMeta: string;
  /** Modules the guest loads at boot (those built into the kernel are skipped). */
  readonly modules: string;
  /** The serial console's device name on the arch's QEMU machine. */
  readonly console: string;
}

const virtioModules = "virtio_pci virtio_net virtio_blk virtio-rng isofs";
const tinyArches: Readonly<Record<GuestArch, TinyArch>> = {
  // button + evdev: acpid sees QMP system_powerdown (ACPI exists on q35 only).
  x86_64: {
    debArch: "amd64",
    suite: "bookworm",
    kernelMeta: "linux-image-cloud-amd64",
    modules: `${virtioModules} button evdev`,
    console: "ttyS0",
  },
  // The virt machine's PL011 UART is ttyAMA0. Debian's arm64 cloud kernel has the PCIe host
  // bridge built in and virtio as modules, like the amd64 one.
  aarch64: {
    debArch: "arm64",
    suite: "bookworm",
    kernelMeta: "linux-image-cloud-arm64",
    modules: virtioModules,
    console: "ttyAMA0",
  },
  // Debian 12 has no riscv64 port (it became an official architecture with Debian 13), so this
  // guest is trixie's kernel and userland; there is no cloud flavour of its kernel.
  riscv64: {
    debArch: "riscv64",
    suite: "trixie",
    kernelMeta: "linux-image-riscv64",
    modules: virtioModules,
    console: "ttyS0",
  },
};

const debianMirrors = {
  MIRROR: "http://deb.debian.org/debian",
  SECURITY_MIRROR: "http://deb.debian.org/debian-security",
};

function tinyParams(arch: GuestArch): Record<string, string> {
  const a = tinyArches[arch];
  return {
    DEB_ARCH: a.debArch,
    SUITE: a.suite,
    ...debianMirrors,
    KERNEL_META: a.kernelMeta,
    MODULES: a.modules,
  };
}

/** The tiny guest of one architecture: Debian's kernel + the busybox/dropbear initramfs. */
function tinyRecipe(label: string, arch: GuestArch): ImageRecipe {
  return {
    label,
    aliases: [],
    arch,
    script: "tiny.sh",
    needsRoot: false,
    inputs: { GUEST_INIT: "tiny-init.sh", DEBIAN_APT: "debian-apt.sh" },
    params: { DISK_SIZE: "1G", ...tinyParams(arch) },
    cacheEnv: () => ({}),
    describe: (dir, recipeHash) => ({
      label,
      disk: join(dir, "disk.qcow2"),
      diskFormat: "qcow2",
      kernel: {
        path: join(dir, "vmlinuz"),
        initrd: join(dir, "initramfs.cpio"),
        append: `console=${tinyArches[arch].console} quiet`,
      },
      arch,
      machine: arch === "x86_64" ? "q35" : "virt",
      seedMedium: "virtio",
      readiness: "ssh",
      sshUser: "root",
      defaultCpus: 1,
      defaultMemoryMiB: 512,
      recipeHash,
    }),
  };
}

const tiny = tinyRecipe("tiny", "x86_64");
const tinyArm64 = tinyRecipe("tiny-arm64", "aarch64");
const tinyRiscv64 = tinyRecipe("tiny-riscv64", "riscv64");

/** What our Debian guests carry, around the arch's kernel (debootstrap --include). */
function debianPackages(kernel: string): string[] {
  // debootstrap does not resolve virtual packages: python3-cryptography (for cloud-init)
  // needs python3-cffi-backend named explicitly.
  return [
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    kernel,
    "openssh-server",
    "cloud-init",
    "python3-cffi-backend",
    "ca-certificates",
    "git",
    "python3",
    "python-is-python3",
    "iproute2",
    "sudo",
    "procps",
    "curl",
    "netbase",
  ];
}

/** How every full Debian guest with cloud-init boots (its seed on a virtio disk) and is sized. */
const cloudInitDebian = {
  seedMedium: "virtio",
  readiness: "cloud-init",
  sshUser: "root",
  defaultCpus: 2,
  defaultMemoryMiB: 1024,
} as const;

const debian12: ImageRecipe = {
  label: "debian-12",
  aliases: ["debian"],
  arch: "x86_64",
  script: "debian-12.sh",
  needsRoot: true,
  inputs: { DEBIAN_CONFIGURE: "debian-configure.sh" },
  params: {
    SUITE: "bookworm",
    ...debianMirrors,
    DISK_SIZE_MIB: "3072",
    BOOT_SIZE_MIB: "128",
    PACKAGES: debianPackages("linux-image-cloud-amd64").join(","),
  },
  cacheEnv: (cacheDir) => ({ DEB_CACHE: join(cacheDir, "debootstrap-debs") }),
  describe: (dir, recipeHash) => ({
    label: "debian-12",
    disk: join(dir, "disk.qcow2"),
    diskFormat: "qcow2",
    arch: "x86_64",
    machine: "q35",
    // Debian's cloud kernel has no AHCI driver, so a q35 IDE/SATA CD-ROM is invisible to it;
    // cloud-init's NoCloud finds the cidata label on a virtio disk just as well.
    ...cloudInitDebian,
    recipeHash,
  }),
};

/** What differs between the Debian guests of other architectures (debian-foreign.sh's parameters). */
interface ForeignDebian {
  readonly label: string;
  readonly arch: Exclude<GuestArch, "x86_64">;
  readonly suite: string;
  readonly kernelMeta: string;
  /** Installed by apt after the updates (it resolves what debootstrap's --include cannot). */
  readonly aptPackages?: readonly string[];
  /** The arch's QEMU settings: those of packages/vm/src/guest-machine.ts (this package cannot import it). */
  readonly qemu: { readonly machine: string; readonly cpu: string; readonly bios?: string };
  readonly buildTimeoutMs: number;
}

/**
 * A full Debian for another architecture, finished inside an emulated guest of that architecture
 * at build time (debian-foreign.sh): no binfmt, no qemu-user. Booted with its kernel and initramfs
 * loaded directly; the root is the whole first virtio disk (the job's overlay comes before the seed).
 */
function foreignDebianRecipe(d: ForeignDebian): ImageRecipe {
  const console = tinyArches[d.arch].console;
  return {
    label: d.label,
    aliases: [],
    arch: d.arch,
    script: "debian-foreign.sh",
    needsRoot: true,
    buildTimeoutMs: d.buildTimeoutMs,
    inputs: { STAGE2: "debian-foreign-stage2.sh", DEBIAN_CONFIGURE: "debian-configure.sh" },
    params: {
      DEB_ARCH: tinyArches[d.arch].debArch,
      SUITE: d.suite,
      ...debianMirrors,
      DISK_SIZE_MIB: "3072",
      // What a C, Python or shell job needs beyond the x86 image's set; kmod loads the build
      // guest's network and disk drivers. e2fsprogs is required in bookworm but not in trixie,
      // whose minbase then lacks resize2fs (cloud-init's resizefs fails: `status: error`) and
      // fsck.ext4.
      PACKAGES: [...debianPackages(d.kernelMeta), "gcc", "libc6-dev", "make", "kmod", "e2fsprogs"].join(","),
      ...(d.aptPackages ? { APT_PACKAGES: d.aptPackages.join(" ") } : {}),
      QEMU_SYSTEM: `qemu-system-${d.arch}`,
      QEMU_MACHINE: d.qemu.machine,
      QEMU_CPU: d.qemu.cpu,
      ...(d.qemu.bios ? { QEMU_BIOS: d.qemu.bios } : {}),
      CONSOLE: console,
      BUILD_CPUS: "2",
      // The build guest's root lives in RAM (at most half of it): the packages and what they unpack.
      BUILD_MEMORY_MIB: "6144",
    },
    // A .deb cache per architecture: debootstrap does not expect another build (debian-12's, at
    // the same time) writing the architecture-independent packages both share into the same directory.
    cacheEnv: (cacheDir) => ({ DEB_CACHE: join(cacheDir, `debootstrap-debs-${tinyArches[d.arch].debArch}`) }),
    describe: (dir, recipeHash) => ({
      label: d.label,
      disk: join(dir, "disk.qcow2"),
      diskFormat: "qcow2",
      kernel: {
        path: join(dir, "vmlinuz"),
        initrd: join(dir, "initrd.img"),
        append: `root=/dev/vda ro console=${console}`,
      },
      arch: d.arch,
      machine: "virt",
      ...cloudInitDebian,
      recipeHash,
    }),
  };
}

// The second stage and the updates run emulated: far longer than any other build, and longer
// still on a machine whose cores are taken by others (docs/architectures.md).
const debian12Arm64 = foreignDebianRecipe({
  label: "debian-12-arm64",
  arch: "aarch64",
  suite: "bookworm",
  kernelMeta: "linux-image-cloud-arm64",
  qemu: { machine: "virt,gic-version=max", cpu: "max,pauth-impdef=on" },
  buildTimeoutMs: 120 * 60_000,
});

// Debian 13: Debian 12 has no riscv64 port. -bios default is OpenSBI, the firmware (SBI) the
// kernel runs on under TCG. trixie's own Node (20) is there for JavaScript actions, as Node's
// official builds have no riscv64 Linux one (images.yaml `node:`).
const debian13Riscv64 = foreignDebianRecipe({
  label: "debian-13-riscv64",
  arch: "riscv64",
  suite: "trixie",
  kernelMeta: "linux-image-riscv64",
  aptPackages: ["nodejs"],
  qemu: { machine: "virt", cpu: "rv64", bios: "default" },
  buildTimeoutMs: 180 * 60_000,
});

/**
 * Kernel arguments that cost nothing and trim boot work (BOOT-SPEED.md C). Never
 * `mitigations=off`: guests run untrusted job code, and it gained nothing measurable.
 */
const leanKernelArgs =
  "console=ttyS0 quiet tsc=reliable no_timer_check i8042.noaux i8042.nopnp i8042.nokbd 8250.nr_uarts=1";

/** How every tiny-fast.sh guest starts: keys through its agent, snapshot restore, one small VM. */
const agentGuestTraits = {
  keys: "agent",
  snapshot: true,
  seedMedium: "virtio",
  readiness: "ssh",
  sshUser: "root",
  defaultCpus: 1,
  defaultMemoryMiB: 512,
} as const;

/** What every tiny-fast.sh build reads: the tiny recipe it starts from, the agent init and helper. */
const tinyFastInputs = {
  TINY_RECIPE: "tiny.sh",
  TINY_INIT: "tiny-init.sh",
  DEBIAN_APT: "debian-apt.sh",
  GUEST_INIT: "tiny-fast-init.sh",
  FRESH_START_C: "fresh-start.c",
  JOB_COMMANDS_C: "job-commands.c",
};

/** The tiny guest for the fast boot paths: microvm, PVH kernel, key agent, snapshot restore. */
const tinyFast: ImageRecipe = {
  label: "tiny-fast",
  aliases: [],
  arch: "x86_64",
  script: "tiny-fast.sh",
  needsRoot: false,
  inputs: {
    ...tinyFastInputs,
    KERNEL_SCRIPT: "guest-kernel.sh",
    KERNEL_CONFIG: "guest-kernel.config",
  },
  params: {
    DISK_SIZE: "1G",
    KERNEL: "own",
    KERNEL_SOURCE_PACKAGE: "linux-source-6.1",
    CROSS_PREFIX: "",
    ...tinyParams("x86_64"),
  },
  // The kernel takes ~5 min to build on 2 quiet cores: kept apart, so a new init script reuses
  // it. Its compile slows with whatever else the host runs (over 20 min seen at load ~15).
  buildTimeoutMs: 60 * 60_000,
  cacheEnv: (cacheDir) => ({ KERNEL_CACHE: join(cacheDir, "guest-kernels") }),
  describe: (dir, recipeHash, built) => ({
    label: "tiny-fast",
    disk: join(dir, "disk.qcow2"),
    diskFormat: "qcow2",
    kernel: {
      path: join(dir, "vmlinuz"),
      initrd: join(dir, "initramfs.cpio"),
      append: leanKernelArgs,
      ...(built("vmlinux") ? { pvh: join(dir, "vmlinux") } : {}),
    },
    arch: "x86_64",
    machine: "microvm",
    kernelEntry: "pvh",
    ...agentGuestTraits,
    recipeHash,
  }),
};

/**
 * Debian 12 for the fast boot paths (decision 0009): debootstrap with systemd and build tools,
 * Debian's cloud kernel through PVH on microvm with a busybox initramfs that only mounts the root,
 * tiny-fast's key agent unchanged as a systemd unit, dropbear without PAM. `debian-12` stays as it
 * was, for cloud-init and the vendor image.
 */
const debian12Fast: ImageRecipe = {
  label: "debian-12-fast",
  aliases: [],
  arch: "x86_64",
  script: "debian-12-fast.sh",
  needsRoot: true,
  inputs: {
    DEBIAN_CONFIGURE: "debian-configure.sh",
    GUEST_INIT: "tiny-fast-init.sh",
    FRESH_START_C: "fresh-start.c",
    JOB_COMMANDS_C: "job-commands.c",
    DROPBEAR_WRAPPER: "debian-12-fast-dropbear.sh",
    INITRAMFS_INIT: "debian-12-fast-init.sh",
  },
  params: {
    SUITE: "bookworm",
    ...debianMirrors,
    DISK_SIZE_MIB: "4096",
    KERNEL_META: "linux-image-cloud-amd64",
    // What the initramfs loads (with their dependencies) to see the root disk on microvm; ext4 is built in.
    INITRAMFS_MODULES: "virtio_mmio virtio_blk",
    PACKAGES: [
      "systemd",
      "systemd-sysv",
      "udev",
      "dbus",
      "kmod",
      "dropbear-bin",
      "acpid",
      "ca-certificates",
      "curl",
      "git",
      "python3",
      "python-is-python3",
      "build-essential",
      "iproute2",
      "procps",
      "sudo",
      "netbase",
      "xz-utils",
      "unzip",
      // The tiny guests' busybox (httpd, and the applets a script may call as `busybox X`): the
      // checkout conformance serves its repositories with `busybox httpd` from inside the guest.
      "busybox-static",
    ].join(","),
  },
  cacheEnv: (cacheDir) => ({ DEB_CACHE: join(cacheDir, "debootstrap-debs") }),
  describe: (dir, recipeHash, built) => ({
    label: "debian-12-fast",
    disk: join(dir, "disk.qcow2"),
    diskFormat: "qcow2",
    kernel: {
      path: join(dir, "vmlinuz"),
      initrd: join(dir, "initramfs.cpio"),
      // net.ifnames=0 keeps eth0 the name the agent configured (udev would rename it under it).
      append: `${leanKernelArgs} net.ifnames=0`,
      ...(built("vmlinux") ? { pvh: join(dir, "vmlinux") } : {}),
    },
    arch: "x86_64",
    machine: "microvm",
    kernelEntry: "pvh",
    ...agentGuestTraits,
    defaultCpus: 2,
    defaultMemoryMiB: 1024,
    recipeHash,
  }),
};

/**
 * The tiny aarch64 guest with the key agent, so jobs can start by restoring a saved idle guest: on
 * Debian's arm64 kernel (we build no arm64 kernel), its virtio modules plus virtio_console (the
 * agent's port) loaded by the agent init; fresh-start cross-compiled with Debian's
 * gcc-aarch64-linux-gnu.
 */
const tinyArm64Fast: ImageRecipe = {
  label: "tiny-arm64-fast",
  aliases: [],
  arch: "aarch64",
  script: "tiny-fast.sh",
  needsRoot: false,
  inputs: tinyFastInputs,
  params: {
    DISK_SIZE: "1G",
    KERNEL: "debian",
    CROSS_PREFIX: "aarch64-linux-gnu-",
    ...tinyParams("aarch64"),
    MODULES: `${tinyArches.aarch64.modules} virtio_console`,
  },
  cacheEnv: () => ({}),
  describe: (dir, recipeHash) => ({
    label: "tiny-arm64-fast",
    disk: join(dir, "disk.qcow2"),
    diskFormat: "qcow2",
    kernel: { path: join(dir, "vmlinuz"), initrd: join(dir, "initramfs.cpio"), append: "console=ttyAMA0 quiet" },
    arch: "aarch64",
    machine: "virt",
    ...agentGuestTraits,
    recipeHash,
  }),
};

const recipes: readonly ImageRecipe[] = [
  tiny,
  debian12,
  tinyFast,
  tinyArm64,
  tinyRiscv64,
  tinyArm64Fast,
  debian12Arm64,
  debian13Riscv64,
  debian12Fast,
];

/** Canonical labels of the images this host can build. */
export function knownImageLabels(): string[] {
  return recipes.map((r) => r.label);
}

/** The recipe for a label or one of its aliases. */
export function findRecipe(label: string): ImageRecipe | undefined {
  return recipes.find((r) => r.label === label || r.aliases.includes(label));
}

/** Absolute paths of a recipe's script and input files in `dir` (its own, or a build's copy). */
function recipeFiles(recipe: ImageRecipe, dir = recipesDir): { script: string; inputs: Record<string, string> } {
  const inputs: Record<string, string> = {};
  for (const [name, file] of Object.entries(recipe.inputs)) inputs[name] = join(dir, file);
  return { script: join(dir, recipe.script), inputs };
}

/** A recipe's script and input files as read once: what its hash names is what its build runs. */
export interface RecipeSnapshot {
  /** 16 hex digits of sha256 over the script, its input files and the parameters. */
  readonly hash: string;
  /** File name → content: the script under its own name, then each input under its file's name. */
  readonly files: ReadonlyMap<string, Buffer>;
}

/**
 * Reads the recipe's files once and hashes them with its parameters: editing any of them gives a
 * new cache directory, so the image is rebuilt. A build runs from these bytes (`writeRecipe`), not
 * from `recipes/`, which may change while it runs (an upgrade of the host's Solstice, an edit):
 * an image must never sit under a hash of files it was not built from.
 */
export async function readRecipe(recipe: ImageRecipe): Promise<RecipeSnapshot> {
  const paths = recipeFiles(recipe);
  const files = new Map<string, Buffer>();
  const hash = createHash("sha256");
  const script = await readFile(paths.script);
  files.set(recipe.script, script);
  hash.update(`script ${recipe.script}\0`);
  hash.update(script);
  for (const name of Object.keys(paths.inputs).sort()) {
    const content = await readFile(paths.inputs[name] as string);
    files.set(recipe.inputs[name] as string, content);
    hash.update(`\0input ${name}\0`);
    hash.update(content);
  }
  for (const name of Object.keys(recipe.params).sort()) hash.update(`\0param ${name}=${recipe.params[name]}`);
  return { hash: hash.digest("hex").slice(0, 16), files };
}

/** The recipe's hash (`readRecipe`), for finding its image in the cache. */
export async function recipeHash(recipe: ImageRecipe): Promise<string> {
  return (await readRecipe(recipe)).hash;
}

/**
 * Writes the snapshot's files into `dir` and returns the script's path and the input variables
 * (name → path) the build is run with.
 */
export async function writeRecipe(
  recipe: ImageRecipe,
  snapshot: RecipeSnapshot,
  dir: string,
): Promise<{ script: string; inputs: Record<string, string> }> {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of snapshot.files) await writeFile(join(dir, name), content, { mode: 0o644 });
  return recipeFiles(recipe, dir);
}
