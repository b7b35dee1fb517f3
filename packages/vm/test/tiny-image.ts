import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { LocalImage } from "@solstice/images";
import pino from "pino";

/**
 * The tiny test guest, from @solstice/images when it offers `ensureLocalImage`, otherwise built with
 * the reference recipe (guest-images/build-tiny.sh) into a shared cache.
 */
export async function tinyImage(): Promise<LocalImage> {
  const cacheDir = process.env.SOLSTICE_TEST_CACHE_DIR ?? "/var/tmp/solstice-test-cache";
  // @solstice/images is written in parallel; until it has an entry point, use the reference recipe.
  const images = (await import("@solstice/images").catch(() => ({}))) as {
    ensureLocalImage?: (label: string, opts: { cacheDir: string; log: pino.Logger }) => Promise<LocalImage>;
  };
  if (images.ensureLocalImage) return images.ensureLocalImage("tiny", { cacheDir, log: pino({ level: "warn" }) });
  const dir = join(cacheDir, "tiny-reference");
  if (!existsSync(join(dir, "disk.qcow2"))) {
    mkdirSync(dir, { recursive: true });
    execFileSync("bash", ["/work/shared/guest-images/build-tiny.sh", dir], { stdio: "ignore", timeout: 120_000 });
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", join(dir, "disk.qcow2"), "64M"]);
  }
  return {
    label: "tiny",
    disk: join(dir, "disk.qcow2"),
    diskFormat: "qcow2",
    kernel: { path: join(dir, "vmlinuz"), initrd: join(dir, "initramfs.img"), append: "console=ttyS0 quiet" },
    machine: "pc",
    seedMedium: "cdrom",
    readiness: "ssh",
    sshUser: "root",
    defaultCpus: 1,
    defaultMemoryMiB: 256,
    recipeHash: "reference",
  };
}
