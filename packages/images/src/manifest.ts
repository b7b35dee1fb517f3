import { access, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { ImageError } from "./errors.ts";
import { guestArches } from "./guest-arch.ts";
import type { LocalImage } from "./local-image.ts";

/** The manifest every cached image directory holds. */
export const manifestFile = "image.json";

const localImageSchema = z.object({
  label: z.string().min(1),
  disk: z.string().min(1),
  diskFormat: z.enum(["qcow2", "raw"]),
  kernel: z
    .object({
      path: z.string().min(1),
      initrd: z.string().min(1).optional(),
      append: z.string(),
      pvh: z.string().min(1).optional(),
    })
    .optional(),
  // Manifests written before images had an architecture were all x86_64.
  arch: z.enum(guestArches).default("x86_64"),
  machine: z.enum(["q35", "pc", "microvm", "virt"]),
  seedMedium: z.enum(["cdrom", "virtio"]),
  readiness: z.enum(["ssh", "cloud-init"]),
  sshUser: z.string().min(1),
  kernelEntry: z.enum(["bzimage", "pvh"]).optional(),
  kernelArgs: z.array(z.string()).optional(),
  keys: z.enum(["seed", "agent"]).optional(),
  snapshot: z.boolean().optional(),
  defaultCpus: z.number().int().positive(),
  defaultMemoryMiB: z.number().int().positive(),
  recipeHash: z.string().min(1),
});

export async function writeManifest(dir: string, image: LocalImage): Promise<void> {
  await writeFile(join(dir, manifestFile), `${JSON.stringify(image, null, 2)}\n`);
}

/**
 * The image in `dir`, or undefined when there is none. A manifest that does not parse, or
 * whose files are missing, is an error: the directory is damaged and must be removed.
 */
export async function readManifest(dir: string): Promise<LocalImage | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, manifestFile), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let parsed: z.infer<typeof localImageSchema>;
  try {
    parsed = localImageSchema.parse(JSON.parse(text));
  } catch (error) {
    throw new ImageError("bad_manifest", `${join(dir, manifestFile)} is not a valid image manifest`, {
      hint: `delete ${dir} to rebuild it`,
      cause: error,
    });
  }
  const files = [parsed.disk, parsed.kernel?.path, parsed.kernel?.initrd, parsed.kernel?.pvh].filter(
    (f) => f !== undefined,
  );
  for (const file of files) {
    await access(file).catch((error: unknown) => {
      throw new ImageError("bad_manifest", `${file}, listed in ${join(dir, manifestFile)}, is missing`, {
        hint: `delete ${dir} to rebuild it`,
        cause: error,
      });
    });
  }
  return parsed;
}
