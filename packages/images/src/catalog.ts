import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { z } from "zod";
import { ImageError, UnknownImageError } from "./errors.ts";
import { guestArches } from "./guest-arch.ts";
import { findRecipe } from "./recipes.ts";

/** The repository's `images.yaml`; `$SOLSTICE_IMAGE_CATALOG` points elsewhere. */
export const defaultCatalogPath = fileURLToPath(new URL("../../../images.yaml", import.meta.url));

const labelSchema = z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "a label is lower-case letters, digits, . _ -");
const hexDigest = z.string().regex(/^[0-9a-f]+$/i, "a hex digest");

const checksumSchema = z
  .object({
    algorithm: z.enum(["sha256", "sha512"]),
    /** The digest itself, when the catalog pins one. */
    value: hexDigest.optional(),
    /** The vendor's checksum file: GNU `*SUMS`, BSD `CHECKSUM.SHA256` or a bare-hash sidecar. */
    file: z.string().url().optional(),
  })
  .refine((c) => (c.value === undefined) !== (c.file === undefined), "give exactly one of value and file")
  .refine((c) => c.value === undefined || c.value.length === (c.algorithm === "sha256" ? 64 : 128), {
    message: "the value's length does not match the algorithm",
  });

const sourceSchema = z.object({
  url: z.string().url(),
  checksum: checksumSchema,
  compression: z.enum(["none", "gzip", "xz", "zstd"]),
  format: z.enum(["qcow2", "raw", "vmdk"]),
});

const bootSchema = z
  .object({
    /**
     * `microvm` has no PCI and no CD-ROM: virtio-mmio devices, the guest kernel needs virtio_mmio.
     * `virt` is the machine of aarch64 and riscv64 guests (PCIe, virtio-pci devices).
     */
    machine: z.enum(["q35", "pc", "microvm", "virt"]).default("q35"),
    seedMedium: z.enum(["cdrom", "virtio"]).default("cdrom"),
    readiness: z.enum(["ssh", "cloud-init"]).default("cloud-init"),
    sshUser: z.string().min(1).default("root"),
    /** `pvh`: the uncompressed kernel through its PVH entry, when the build found one. */
    kernel: z.enum(["bzimage", "pvh"]).optional(),
    /** Appended to the built image's kernel command line. */
    kernelArgs: z
      .array(z.string().regex(/^\S+$/, "one argument, no spaces"))
      .refine((args) => !args.some((a) => a.startsWith("mitigations=")), {
        message: "mitigations= is never changed: guests run untrusted code",
      })
      .optional(),
    /** `agent`: keys arrive after boot over virtio-serial (our own images), no seed. */
    keys: z.enum(["seed", "agent"]).optional(),
    /** Start jobs by restoring a saved booted-and-idle guest. */
    snapshot: z.boolean().optional(),
  })
  .refine((b) => !b.snapshot || b.keys === "agent", {
    message: "snapshot needs keys: agent (a restored guest cannot re-read a seed)",
  })
  .refine((b) => b.machine !== "microvm" || b.seedMedium === "virtio" || b.keys === "agent", {
    message: "microvm has no CD-ROM: use seedMedium: virtio",
  });

const entrySchema = z
  .object({
    label: labelSchema,
    aliases: z.array(labelSchema).default([]),
    description: z.string().default(""),
    /** The guest's CPU architecture (default x86_64): hosts of another run it under TCG. */
    arch: z.enum(guestArches).default("x86_64"),
    /** Where to download it from. */
    source: sourceSchema.optional(),
    /** The local recipe (packages/images/recipes) that builds it on this host. */
    build: z.string().optional(),
    /** Which way comes first when both exist (default: download). */
    prefer: z.enum(["download", "build"]).optional(),
    boot: bootSchema.default({ machine: "q35", seedMedium: "cdrom", readiness: "cloud-init", sshUser: "root" }),
    /** What reads the NoCloud seed in the guest. */
    cloudInit: z.enum(["cloud-init", "nuageinit", "solstice-tiny", "none"]),
    defaults: z.object({
      cpus: z.number().int().positive(),
      memoryMiB: z.number().int().min(128),
      diskGiB: z.number().int().positive(),
    }),
    /** Whether the URLs were checked against the vendor's published layout. */
    confirmed: z.boolean(),
    /**
     * Node runtimes the image has of its own, by major (`node: { "20": /usr/bin/node }`): a
     * JavaScript action whose `runs.using` asks for that major runs on it. For the other majors
     * the host carries Node's official Linux build in (x86_64 and aarch64 Linux guests only).
     */
    node: z
      .partialRecord(
        z.enum(["20", "24"], { message: 'a Node major Solstice runs actions on: "20" or "24"' }),
        z.string().regex(/^\/\S*$/, "an absolute path in the guest"),
      )
      .optional(),
  })
  .strict()
  .refine((e) => e.source || e.build, "needs a source, a build, or both")
  .refine((e) => e.build === undefined || findRecipe(e.build) !== undefined, {
    message: "build names no recipe in packages/images/recipes",
  })
  .refine((e) => e.build === undefined || findRecipe(e.build)?.arch === e.arch, {
    message: "arch differs from the architecture its build recipe makes",
  })
  .refine((e) => (e.arch === "x86_64" ? e.boot.machine !== "virt" : e.boot.machine === "virt"), {
    message: "machine: x86_64 guests boot on q35, pc or microvm; aarch64 and riscv64 guests on virt",
  })
  .refine((e) => e.arch === "x86_64" || e.boot.kernel !== "pvh", {
    message: "kernel: pvh is an x86 boot protocol",
  })
  // QEMU 7.2 saves and restores a riscv64 virt machine, but the key agent's virtio-serial port
  // delivers nothing to a riscv64 guest there (docs/architectures.md), and a restored guest can
  // get its keys no other way.
  .refine((e) => e.arch !== "riscv64" || !e.boot.snapshot, {
    message:
      "snapshot: riscv64 guests boot cold: the key agent receives nothing over virtio-serial on QEMU's riscv64 virt machine, and a restored guest has no other way to get its keys",
  })
  // Their disks boot through UEFI firmware (qemu-efi-aarch64, u-boot/OpenSBI), which the backend
  // does not set up: our own builds boot their kernel directly.
  .refine((e) => e.arch === "x86_64" || e.source === undefined, {
    message: "downloaded images are x86_64 only for now; aarch64 and riscv64 guests are built (build:)",
  })
  .transform((e) => ({ ...e, prefer: e.prefer ?? (e.source ? ("download" as const) : ("build" as const)) }));

export const imageCatalogSchema = z
  .object({ images: z.array(entrySchema).min(1) })
  .strict()
  .superRefine((catalog, ctx) => {
    const seen = new Map<string, string>();
    for (const entry of catalog.images) {
      for (const name of [entry.label, ...entry.aliases]) {
        const owner = seen.get(name);
        if (owner) ctx.addIssue({ code: "custom", message: `"${name}" is used by both ${owner} and ${entry.label}` });
        seen.set(name, entry.label);
      }
    }
  });

export type ImageCatalog = z.output<typeof imageCatalogSchema>;
export type CatalogEntry = ImageCatalog["images"][number];
export type ImageSource = z.output<typeof sourceSchema>;
export type BootSettings = z.output<typeof bootSchema>;

/** Reads and validates a catalog file; every problem is named by its path in the file. */
export async function loadImageCatalog(
  path: string = process.env.SOLSTICE_IMAGE_CATALOG ?? defaultCatalogPath,
): Promise<ImageCatalog> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new ImageError("bad_catalog", `cannot read the image catalog ${path}`, {
      hint: "set SOLSTICE_IMAGE_CATALOG to the images.yaml to use",
      cause: error,
    });
  }
  return parseImageCatalog(text, path);
}

export function parseImageCatalog(text: string, origin = "images.yaml"): ImageCatalog {
  const parsed = imageCatalogSchema.safeParse(parse(text));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ImageError("bad_catalog", `${origin} is not a valid image catalog:\n  ${problems.join("\n  ")}`, {
      hint: "see the comments at the top of images.yaml",
    });
  }
  return parsed.data;
}

/** The entry for a label or one of its aliases. */
export function findCatalogEntry(catalog: ImageCatalog, label: string): CatalogEntry {
  const entry = catalog.images.find((e) => e.label === label || e.aliases.includes(label));
  if (!entry)
    throw new UnknownImageError(
      label,
      catalog.images.map((e) => e.label),
    );
  return entry;
}
