import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { ImageProgress, LocalImage } from "@solstice/images";
import { generateJobKeys, type SshTarget } from "@solstice/ssh";
import type { Logger } from "pino";
import type { Vm, VmBackend, VmSpec } from "../backend.ts";
import { VmError } from "../errors.ts";
import { cloudConfig } from "../seed-iso.ts";
import type { AddressPool, JobAddress } from "./address-pool.ts";
import { reapBhyveOrphans } from "./bhyve-reaper.ts";
import type { CommandRunner } from "./command-runner.ts";
import { CUT_RULES_FILE, cutRules } from "./ipf-rules.ts";
import { jobNames } from "./names.ts";
import { zoneConfig } from "./zone-config.ts";
import { zoneConsoleTail } from "./zone-console.ts";

export interface BhyveBackendOptions {
  runner: CommandRunner;
  log: Logger;
  /** ZFS dataset under which job clones are made, e.g. rpool/solstice/vms. */
  cloneParent: string;
  /** Where zone roots live, e.g. /zones. */
  zonesRoot: string;
  /** The link the jobs' VNICs are made over: an etherstub the global zone routes, or a NIC. */
  link: string;
  /** Where seed ISOs are written (a directory readable by the zones' lofs mounts). */
  seedRoot: string;
  /** The golden image's snapshot for a label, e.g. rpool/solstice/images/omnios-stable@golden. */
  goldenSnapshot(image: LocalImage): string;
  /** A free address for a job's VNIC; returned to the pool by `release`. */
  addresses: AddressPool;
  /**
   * The global zone's interface on the etherstub (where the guests' gateway address lives). With
   * it, a VM's network can be cut with ipfilter rules there (`cutNetwork`); without it it cannot.
   */
  gatewayInterface?: string;
  /** The guest console log zoneadmd keeps for a zone (default `<zonepath>/logs/console.log`). */
  consoleLogPath?(zonePath: string): string;
  /** Resolves a label to an image (the catalog); zvols are prepared by the operator (docs/illumos.md). */
  ensureImage(label: string, progress?: ImageProgress): Promise<LocalImage>;
  /** Resolves when the guest's SSH answers; the QEMU backend's banner probe in production. */
  waitForSsh(host: string, port: number, opts: { signal: AbortSignal; deadlineMs: number }): Promise<void>;
  /** Default 300 000. */
  bootTimeoutMs?: number;
}

interface UndoStep {
  readonly what: string;
  readonly run: () => Promise<unknown>;
}

/**
 * One bhyve branded zone per job on an illumos host: a ZFS clone of the golden image, a VNIC, the
 * NoCloud seed as a CD-ROM, boot, SSH. Every step that succeeded is undone, newest first, when a
 * later one fails, and `destroy` undoes them all (halt, uninstall, delete, ipfilter rules, seed,
 * VNIC, clone). At start-up `reapOrphans` removes what a crashed orchestrator left.
 */
export function createBhyveBackend(opts: BhyveBackendOptions): VmBackend {
  return {
    name: "bhyve",
    ensureImage: (label, progress) => opts.ensureImage(label, progress),
    async runsArch(arch) {
      if (arch === "x86_64")
        return { accelerator: "kvm", reason: "bhyve runs the host's own architecture in hardware" };
      throw new VmError("unsupported", `bhyve cannot run ${arch} guests`, {
        hint: "serve that label from a Linux host with the qemu backend",
      });
    },
    reapOrphans: () =>
      reapBhyveOrphans({ runner: opts.runner, log: opts.log, cloneParent: opts.cloneParent, seedRoot: opts.seedRoot }),
    async boot(spec: VmSpec): Promise<Vm> {
      // bhyve runs guests of the host's own architecture only, and illumos hosts are x86_64.
      if (spec.image.arch !== "x86_64") {
        throw new VmError("image_unsupported", `bhyve cannot run ${spec.image.label}, an ${spec.image.arch} guest`, {
          hint: "serve that label from a Linux host with the qemu backend",
        });
      }
      const started = Date.now();
      const { zone, vnic } = jobNames(spec.vmName);
      const zonePath = `${opts.zonesRoot}/${zone}`;
      const clone = `${opts.cloneParent}/${zone}`;
      const log = spec.log.child({ zone });
      const undo: UndoStep[] = [];
      const cmd = (file: string, ...args: string[]) =>
        opts.runner.run(file, args, spec.signal ? { signal: spec.signal } : {});
      // Teardown must finish even after the boot was aborted: it takes no signal.
      const teardown = (file: string, ...args: string[]) => opts.runner.run(file, args, {});
      const destroy = onceOnly(() => undoAll(undo, log));
      const address = opts.addresses.take(spec.vmName);
      undo.push({ what: "address", run: async () => opts.addresses.release(address.ip) });
      try {
        await cmd("zfs", "clone", opts.goldenSnapshot(spec.image), clone);
        undo.push({ what: "clone", run: () => teardown("zfs", "destroy", clone) });
        await cmd("dladm", "create-vnic", "-l", opts.link, vnic);
        undo.push({ what: "vnic", run: () => teardown("dladm", "delete-vnic", vnic) });

        await mkdir(opts.seedRoot, { recursive: true, mode: 0o700 });
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
            zonePath,
            vnic,
            diskDataset: clone,
            seedIso,
            cpus: spec.cpus ?? spec.image.defaultCpus,
            memoryMiB: spec.memoryMiB ?? spec.image.defaultMemoryMiB,
            address,
          }),
        );
        await cmd("zonecfg", "-z", zone, "-f", cfgFile);
        undo.push({ what: "zone config", run: () => teardown("zonecfg", "-z", zone, "delete", "-F") });
        await cmd("zoneadm", "-z", zone, "install");
        undo.push({ what: "zone install", run: () => teardown("zoneadm", "-z", zone, "uninstall", "-F") });
        await cmd("zoneadm", "-z", zone, "boot");
        undo.push({ what: "zone boot", run: () => teardown("zoneadm", "-z", zone, "halt") });

        const bootTimeoutMs = spec.bootTimeoutMs ?? opts.bootTimeoutMs ?? 300_000;
        const signal = spec.signal
          ? AbortSignal.any([spec.signal, AbortSignal.timeout(bootTimeoutMs)])
          : AbortSignal.timeout(bootTimeoutMs);
        try {
          await opts.waitForSsh(address.ip, 22, { signal, deadlineMs: bootTimeoutMs });
        } catch (error) {
          const consoleLog = opts.consoleLogPath?.(zonePath) ?? `${zonePath}/logs/console.log`;
          const tail = await zoneConsoleTail(opts.runner, consoleLog);
          throw new VmError(
            "boot_timeout",
            `${zone} did not answer on ${address.ip}:22 within ${bootTimeoutMs} ms: ${(error as Error).message}\n--- console (${consoleLog}) ---\n${tail || "(nothing)"}`,
            { cause: error, hint: "check the golden image boots under bhyve and takes its address from the seed" },
          );
        }
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
        return {
          id: zone,
          ssh,
          console,
          accelerator: "kvm",
          bootMs: Date.now() - started,
          ...(spec.image.node ? { guestNode: spec.image.node } : {}),
          destroy,
          cutNetwork: onceOnly(() => cutNetwork({ opts, address, seedDir, undo, log })),
        };
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

/**
 * Adds the job's cut rules in the global zone's ipfilter. Their removal is queued to run after
 * the zone is halted, uninstalled and deleted, and before its seed directory (which keeps the
 * rules for the reaper) goes: the guest never runs again with the rules gone.
 */
async function cutNetwork(ctx: {
  opts: BhyveBackendOptions;
  address: JobAddress;
  seedDir: string;
  undo: UndoStep[];
  log: Logger;
}): Promise<void> {
  const { opts, address, seedDir, undo } = ctx;
  if (!opts.gatewayInterface) {
    throw new VmError("unsupported", "this bhyve host cannot cut a VM's network: it has no gateway interface", {
      hint: "route the guests through an etherstub and set SOLSTICE_BHYVE_GATEWAY_INTERFACE (docs/illumos.md)",
    });
  }
  const rules = cutRules(opts.gatewayInterface, address);
  const addFile = join(seedDir, "ipf-cut.add");
  const removeFile = join(seedDir, CUT_RULES_FILE);
  await writeFile(removeFile, rules.remove, { mode: 0o600 });
  await writeFile(addFile, rules.add, { mode: 0o600 });
  await opts.runner.run("ipf", ["-f", addFile], {});
  const afterSeed = undo.findIndex((step) => step.what === "seed") + 1;
  undo.splice(afterSeed, 0, { what: "ipf rules", run: () => opts.runner.run("ipf", ["-r", "-f", removeFile], {}) });
  ctx.log.info({ ip: address.ip }, "network cut: ipfilter passes only the guest's SSH answers");
}

/** Runs every undo step, newest first, past failures; throws one error naming what is left. */
async function undoAll(undo: UndoStep[], log: Logger): Promise<void> {
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
      hint: "remove them by hand (zoneadm list -cv, dladm show-vnic, zfs list, ipfstat -io), or restart the orchestrator, whose reaper does",
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
  address: JobAddress,
): Promise<void> {
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
