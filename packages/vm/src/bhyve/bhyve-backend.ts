import { createHash, randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { ImageProgress, LocalImage } from "@solstice/images";
import { generateJobKeys, type SshTarget } from "@solstice/ssh";
import type { Logger } from "pino";
import type { Vm, VmBackend, VmSpec } from "../backend.ts";
import { VmError } from "../errors.ts";
import { cloudConfig } from "../seed-iso.ts";
import type { CommandRunner } from "./command-runner.ts";
import { zoneConfig } from "./zone-config.ts";

export interface BhyveBackendOptions {
  runner: CommandRunner;
  log: Logger;
  /** ZFS dataset under which job clones are made, e.g. rpool/solstice/vms. */
  cloneParent: string;
  /** Where zone roots live, e.g. /zones. */
  zonesRoot: string;
  /** The physical link the jobs' VNICs are made over, e.g. ixgbe0 or an etherstub. */
  link: string;
  /** Where seed ISOs are written (a directory readable by the zones' lofs mounts). */
  seedRoot: string;
  /** The golden image's snapshot for a label, e.g. rpool/solstice/images/omnios-stable@golden. */
  goldenSnapshot(image: LocalImage): string;
  /** A free address for a job's VNIC; returned to the pool by `release`. */
  addresses: { take(vmName: string): { ip: string; prefixLength: number; gateway: string }; release(ip: string): void };
  /** Resolves a label to an image (the catalog); zvols are prepared by the operator (docs/illumos.md). */
  ensureImage(label: string, progress?: ImageProgress): Promise<LocalImage>;
  /** Resolves when the guest's SSH answers; the QEMU backend's banner probe in production. */
  waitForSsh(host: string, port: number, opts: { signal: AbortSignal; deadlineMs: number }): Promise<void>;
  /** Default 300 000. */
  bootTimeoutMs?: number;
}

/**
 * One bhyve branded zone per job on an illumos host: a ZFS clone of the golden image, a VNIC, the
 * NoCloud seed as a CD-ROM, boot, SSH. Every step that succeeded is undone, newest first, when a
 * later one fails, and `destroy` undoes them all (halt, uninstall, delete, VNIC, clone, seed).
 */
export function createBhyveBackend(opts: BhyveBackendOptions): VmBackend {
  return {
    name: "bhyve",
    ensureImage: (label, progress) => opts.ensureImage(label, progress),
    reapOrphans: async () => 0,
    async boot(spec: VmSpec): Promise<Vm> {
      const started = Date.now();
      const tag = createHash("sha256").update(spec.vmName).digest("hex").slice(0, 8);
      const zone = `solstice-${tag}-${spec.vmName.replace(/[^A-Za-z0-9_.-]/g, "-")}`.slice(0, 60);
      // VNIC names: at most 31 characters, ending in a digit.
      const vnic = `slst${tag}0`;
      const clone = `${opts.cloneParent}/${zone}`;
      const log = spec.log.child({ zone });
      const undo: { what: string; run: () => Promise<unknown> }[] = [];
      const cmd = (file: string, ...args: string[]) =>
        opts.runner.run(file, args, spec.signal ? { signal: spec.signal } : {});
      const destroy = onceOnly(() => undoAll(undo, log));
      const address = opts.addresses.take(spec.vmName);
      undo.push({ what: "address", run: async () => opts.addresses.release(address.ip) });
      try {
        await cmd("zfs", "clone", opts.goldenSnapshot(spec.image), clone);
        undo.push({ what: "clone", run: () => cmd("zfs", "destroy", clone) });
        await cmd("dladm", "create-vnic", "-l", opts.link, vnic);
        undo.push({ what: "vnic", run: () => cmd("dladm", "delete-vnic", vnic) });

        const seedDir = await mkdtemp(join(opts.seedRoot, `${zone}-`));
        undo.push({ what: "seed", run: () => rm(seedDir, { recursive: true, force: true }) });
        const keys = generateJobKeys();
        const src = join(seedDir, "src");
        const seedIso = join(seedDir, "seed.iso");
        await writeSeedFiles(src, keys, zone, address);
        await cmd("mkisofs", "-quiet", "-o", seedIso, "-V", "cidata", "-J", "-R", src);

        const cfgFile = join(seedDir, "zone.cfg");
        await writeFile(
          cfgFile,
          zoneConfig({
            zonePath: `${opts.zonesRoot}/${zone}`,
            vnic,
            diskDataset: clone,
            seedIso,
            cpus: spec.cpus ?? spec.image.defaultCpus,
            memoryMiB: spec.memoryMiB ?? spec.image.defaultMemoryMiB,
            address,
          }),
        );
        await cmd("zonecfg", "-z", zone, "-f", cfgFile);
        undo.push({ what: "zone config", run: () => cmd("zonecfg", "-z", zone, "delete", "-F") });
        await cmd("zoneadm", "-z", zone, "install");
        undo.push({ what: "zone install", run: () => cmd("zoneadm", "-z", zone, "uninstall", "-F") });
        await cmd("zoneadm", "-z", zone, "boot");
        undo.push({ what: "zone boot", run: () => cmd("zoneadm", "-z", zone, "halt") });

        const bootTimeoutMs = spec.bootTimeoutMs ?? opts.bootTimeoutMs ?? 300_000;
        const signal = spec.signal
          ? AbortSignal.any([spec.signal, AbortSignal.timeout(bootTimeoutMs)])
          : AbortSignal.timeout(bootTimeoutMs);
        await opts.waitForSsh(address.ip, 22, { signal, deadlineMs: bootTimeoutMs });
        const ssh: SshTarget = {
          host: address.ip,
          port: 22,
          username: spec.image.sshUser,
          privateKey: keys.client.privateKey,
          hostKey: keys.host.publicKey,
        };
        log.info({ ip: address.ip, bootMs: Date.now() - started }, "bhyve zone ready");
        const console = new PassThrough();
        console.end();
        return { id: zone, ssh, console, accelerator: "kvm", bootMs: Date.now() - started, destroy };
      } catch (error) {
        await destroy().catch((cleanupError: unknown) =>
          log.error({ err: cleanupError }, "cleanup after a failed boot"),
        );
        if (error instanceof VmError) throw error;
        throw new VmError("boot_failed", `booting bhyve zone ${zone} failed: ${(error as Error).message}`, {
          cause: error,
          hint: "the zone, VNIC, clone and seed were removed; see the host's zoneadm and dladm state if not",
        });
      }
    },
  };
}

/** Runs every undo step, newest first, past failures; throws one error naming what is left. */
async function undoAll(undo: { what: string; run: () => Promise<unknown> }[], log: Logger): Promise<void> {
  const failed: string[] = [];
  for (const step of undo.splice(0).reverse()) {
    try {
      await step.run();
    } catch (error) {
      failed.push(step.what);
      log.error({ err: error, step: step.what }, "bhyve cleanup step failed");
    }
  }
  if (failed.length > 0) {
    throw new VmError("command_failed", `could not remove: ${failed.join(", ")}`, {
      hint: "remove them by hand (zoneadm list -cv, dladm show-vnic, zfs list)",
    });
  }
}

function onceOnly(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= fn();
    return done;
  };
}

async function writeSeedFiles(
  dir: string,
  keys: ReturnType<typeof generateJobKeys>,
  hostname: string,
  address: { ip: string; prefixLength: number; gateway: string },
): Promise<void> {
  const { mkdir } = await import("node:fs/promises");
  await mkdir(dir, { mode: 0o700 });
  await writeFile(join(dir, "user-data"), cloudConfig(keys), { mode: 0o600 });
  await writeFile(join(dir, "meta-data"), `instance-id: ${randomUUID()}\nlocal-hostname: ${hostname}\n`, {
    mode: 0o600,
  });
  // The zone's link protection allows only this address; the guest configures it from the seed.
  await writeFile(
    join(dir, "network-config"),
    [
      "version: 2",
      "ethernets:",
      "  primary:",
      "    match: { name: '*' }",
      `    addresses: [${address.ip}/${address.prefixLength}]`,
      `    gateway4: ${address.gateway}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
}
