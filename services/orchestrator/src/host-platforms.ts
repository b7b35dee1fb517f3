import { findCatalogEntry, type GuestArch, type ImageCatalog, UnknownImageError } from "@solstice/images";
import type { VmBackend } from "@solstice/vm";
import type { Logger } from "pino";

export interface ArchPlatform {
  readonly accelerator: "kvm" | "tcg";
  readonly reason: string;
  /** The served labels of this architecture. */
  readonly labels: readonly string[];
}

/**
 * The guest architectures this host's labels need (from images.yaml) and how the backend runs
 * each: KVM for the host's own, TCG for the others. A label of an architecture the host cannot run
 * at all (its QEMU system emulator is missing) rejects here, so the host stops at start-up with a
 * hint instead of failing every job of that label. Labels the catalog does not know are left out:
 * their image is resolved, and refused, at their first boot.
 */
export async function hostPlatforms(opts: {
  labels: readonly string[];
  catalog: ImageCatalog;
  backend: VmBackend;
  log: Logger;
  signal?: AbortSignal;
}): Promise<Partial<Record<GuestArch, ArchPlatform>>> {
  const { backend } = opts;
  if (!backend.runsArch) return {};
  const byArch = new Map<GuestArch, string[]>();
  for (const label of opts.labels) {
    let arch: GuestArch;
    try {
      arch = findCatalogEntry(opts.catalog, label).arch;
    } catch (error) {
      if (!(error instanceof UnknownImageError)) throw error;
      opts.log.warn({ label }, "label not in the image catalog: its architecture is not advertised");
      continue;
    }
    byArch.set(arch, [...(byArch.get(arch) ?? []), label]);
  }
  const platforms: Partial<Record<GuestArch, ArchPlatform>> = {};
  for (const [arch, labels] of byArch) {
    const choice = await backend.runsArch(arch, opts.signal);
    platforms[arch] = { accelerator: choice.accelerator, reason: choice.reason, labels };
    opts.log.info({ arch, accelerator: choice.accelerator, reason: choice.reason, labels }, `runs ${arch} guests`);
  }
  return platforms;
}

/** `x86_64=kvm,aarch64=tcg`: the host record's accelerator, as `ciadm hosts` shows it. */
export function describePlatforms(platforms: Partial<Record<GuestArch, ArchPlatform>>): string {
  return Object.entries(platforms)
    .map(([arch, p]) => `${arch}=${p.accelerator}`)
    .join(",");
}
