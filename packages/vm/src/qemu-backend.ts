import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type GuestArch, hostArch, type ImageProgress, type LocalImage, withBuildLock } from "@solstice/images";
import {
  ChannelSession,
  connectSsh,
  freeLocalPort,
  type GuestSession,
  generateJobKeys,
  SshError,
  type SshSession,
  type SshTarget,
  waitForSshBanner,
} from "@solstice/ssh";
import type { Logger } from "pino";
import { type Accelerator, type AcceleratorChoice, probeAccelerator } from "./accelerator-probe.ts";
import type { Vm, VmBackend, VmSpec } from "./backend.ts";
import { ConsoleCapture } from "./console-capture.ts";
import { VmError } from "./errors.ts";
import { qemuSystemBinary, qemuSystemPackage } from "./guest-machine.ts";
import { hostTscKhz } from "./host-tsc.ts";
import { type AgentChannel, deliverKeys } from "./key-agent.ts";
import { cutNamespaceNetwork } from "./netns-cut.ts";
import { type LaunchedVm, launchInNetns } from "./netns-launch.ts";
import { OverlayMaker } from "./overlay.ts";
import { processStartTicks } from "./process-identity.ts";
import { qemuArgs } from "./qemu-args.ts";
import { QmpClient } from "./qmp.ts";
import { runCommand } from "./run-command.ts";
import { createRunDir, reapRunDirs, writeRunRecord } from "./run-dir.ts";
import { writeSeedIso } from "./seed-iso.ts";
import {
  pruneSnapshots,
  resumeIncoming,
  saveGuestState,
  templateDiskPath,
  templateKey,
  touchSnapshot,
} from "./snapshot.ts";
import { unreachableAddresses } from "./unreachable-addresses.ts";

export interface QemuBackendOptions {
  /** Where run directories live (default $SOLSTICE_RUN_DIR or /var/tmp/solstice/vms). */
  runRoot?: string;
  /** Image cache (default: the images package's, $SOLSTICE_IMAGE_CACHE or ~/.cache/solstice/images). */
  imageCacheDir?: string;
  /** "auto" (default) probes; "kvm"/"tcg" force one. */
  accelerator?: "auto" | "kvm" | "tcg";
  /**
   * Whether images with `snapshot` start by restoring their saved state (default true); false
   * boots them cold, to compare the two.
   */
  snapshots?: boolean;
  /**
   * What guests with a key agent serve the job on the agent's channel (decision 0010): its
   * commands (default; images whose SSH user is root, whom job-commands runs as), an SSH session,
   * or nothing (they answer READY and listen on port 22 only). The others are there to compare.
   */
  agentChannel?: AgentChannel;
  /**
   * Whether guests under TCG keep their processes' address randomization (default false: the
   * kernel gets `norandmaps`, so every process reuses the code TCG already translated; decision
   * 0012). True keeps the guest's default, to compare.
   */
  tcgAddressRandomization?: boolean;
  /** The system emulator per guest architecture (default `qemu-system-<arch>` from PATH). */
  qemuBinaries?: Partial<Record<GuestArch, string>>;
  /**
   * Hosts (names or addresses) no guest may reach: the fleet's broker and database. Resolved at
   * each boot and made unreachable inside the VM's network namespace (default none).
   */
  unreachableHosts?: readonly string[];
  /**
   * Ports of the host's loopback every guest may reach at its gateway address 10.0.2.2, each
   * forwarded alone by pasta (the job cache's port); no other host port is reachable (default none).
   */
  hostPorts?: readonly number[];
  log: Logger;
}

/** A VM of the qemu backend. */
export interface QemuVm extends Vm {
  readonly runDir: string;
  readonly qemuPid: number;
  readonly pastaPid: number;
  /** Graceful ACPI power-down (for a VM kept for debugging); quits and cleans up after `deadlineMs` anyway. */
  powerDown(deadlineMs: number): Promise<void>;
}

export interface QemuBackend extends VmBackend {
  boot(spec: VmSpec): Promise<QemuVm>;
  /**
   * The saved state restores of `image` start from (saved now if missing), for the start
   * benchmark's raw-QEMU restore; undefined for images that are not restored.
   */
  savedState(image: LocalImage, signal?: AbortSignal): Promise<string | undefined>;
}

/** Bound on QMP `quit` and on QEMU exiting after it, before SIGKILL. */
const QUIT_DEADLINE_MS = 3_000;
/** Bound on a process exiting after SIGKILL. */
const KILL_WAIT_MS = 5_000;
/** Lines of `cloud-init status --wait` output kept for an error message. */
const CLOUD_INIT_OUTPUT_LINES = 20;
/** Pause before reconnecting when cloud-init cut an early SSH connection. */
const CLOUD_INIT_RETRY_MS = 500;
/** Bound on booting and saving a snapshot template (a cold boot plus the state write). */
const TEMPLATE_DEADLINE_MS = 300_000;
/** Longest wait for another process saving the same template. */
const TEMPLATE_LOCK_WAIT_MS = 600_000;

export function createQemuBackend(opts: QemuBackendOptions): QemuBackend {
  const runRoot = resolve(opts.runRoot ?? process.env.SOLSTICE_RUN_DIR ?? "/var/tmp/solstice/vms");
  // The accelerator verdict is cached beside the images, not among them.
  const cacheDir = resolve(process.env.SOLSTICE_CACHE_DIR ?? join(homedir(), ".cache/solstice"));
  const qemuBinaryFor = (arch: GuestArch): string => opts.qemuBinaries?.[arch] ?? qemuSystemBinary(arch);
  const unreachableHosts = opts.unreachableHosts ?? [];
  const hostPorts = opts.hostPorts ?? [];
  // Passed to every boot and snapshot key only when set, so the default stays one place (qemu-args).
  const addressRandomization =
    opts.tcgAddressRandomization !== undefined ? { tcgAddressRandomization: opts.tcgAddressRandomization } : {};
  const probes = new Map<string, Promise<AcceleratorChoice>>();
  const tscKhz = hostTscKhz();
  const qemuVersions = new Map<string, Promise<string>>();
  const templates = new Map<string, Promise<string>>();
  const overlays = new OverlayMaker();

  /**
   * The saved booted-and-idle state of an image (images with `snapshot`), made once per image,
   * machine command line and QEMU build, shared by this process's boots and, through a lock file,
   * by other processes on the host.
   */
  const templateFor = async (spec: VmSpec, accelerator: Accelerator): Promise<string> => {
    const qemuBinary = qemuBinaryFor(spec.image.arch);
    let qemuVersion = qemuVersions.get(qemuBinary);
    if (!qemuVersion) {
      qemuVersion = runCommand(qemuBinary, ["--version"], { timeoutMs: 10_000 }).then((r) => r.stdout.trim());
      qemuVersions.set(qemuBinary, qemuVersion);
      qemuVersion.catch(() => qemuVersions.delete(qemuBinary));
    }
    const cpus = spec.cpus ?? spec.image.defaultCpus;
    const memoryMiB = spec.memoryMiB ?? spec.image.defaultMemoryMiB;
    const key = templateKey({
      image: spec.image,
      accelerator,
      cpus,
      memoryMiB,
      hostTscKhz: tscKhz,
      qemuVersion: await qemuVersion,
      ...addressRandomization,
    });
    const dir = join(cacheDir, "snapshots");
    const statePath = join(dir, `${spec.image.label}-${key}.state`);
    const diskPath = templateDiskPath(statePath);
    // A state without its disk layer (saved before the layer was kept) is saved again.
    const saved = () => existsSync(statePath) && existsSync(diskPath);
    if (saved()) {
      // Its mtime is its last restore, which pruning goes by.
      await touchSnapshot(statePath).catch(() => undefined);
      return statePath;
    }
    let making = templates.get(statePath);
    if (!making) {
      making = (async () => {
        await mkdir(dir, { recursive: true });
        const partial = `${statePath}.${process.pid}.part`;
        const partialDisk = `${diskPath}.${process.pid}.part`;
        return withBuildLock(
          statePath.replace(/\.state$/, ".lock"),
          { waitTimeoutMs: TEMPLATE_LOCK_WAIT_MS },
          async () => {
            if (saved()) return statePath;
            const started = Date.now();
            const vm = await bootVm({
              spec: {
                vmName: `template-${spec.image.label}`,
                image: spec.image,
                cpus,
                memoryMiB,
                log: opts.log,
                bootTimeoutMs: TEMPLATE_DEADLINE_MS,
              },
              runRoot,
              overlays,
              unreachableHosts,
              hostPorts,
              qemuBinary,
              accelerator,
              tscKhz,
              ...addressRandomization,
              saveStateTo: partial,
              saveDiskTo: partialDisk,
            });
            await vm.destroy();
            // The state last: a state on disk always has its disk layer.
            await rename(partialDisk, diskPath);
            await rename(partial, statePath);
            opts.log.info({ image: spec.image.label, statePath, ms: Date.now() - started }, "snapshot template saved");
            const pruned = await pruneSnapshots(dir);
            if (pruned.length > 0) opts.log.info({ pruned }, "unused snapshot states deleted");
            return statePath;
          },
        ).finally(() => rm(partial, { force: true }).then(() => rm(partialDisk, { force: true })));
      })();
      templates.set(statePath, making);
      making.catch(() => templates.delete(statePath));
    }
    return making;
  };

  // A forced kvm holds for the host's own architecture; other guests can only be emulated, which
  // the probe says without booting anything.
  const configured = (arch: GuestArch): AcceleratorChoice | undefined =>
    opts.accelerator === "tcg" || (opts.accelerator === "kvm" && arch === hostArch())
      ? { accelerator: opts.accelerator, reason: "set in the configuration" }
      : undefined;

  const chooseAccelerator = (image: LocalImage, signal?: AbortSignal): Promise<AcceleratorChoice> => {
    const forced = configured(image.arch);
    if (forced) return Promise.resolve(forced);
    const key = `${image.arch} ${image.kernel?.path ?? ""}`;
    let probe = probes.get(key);
    if (!probe) {
      probe = probeAccelerator({
        cacheDir,
        log: opts.log,
        arch: image.arch,
        qemuBinary: qemuBinaryFor(image.arch),
        ...(image.kernel ? { kernel: image.kernel.path } : {}),
        ...(signal ? { signal } : {}),
      });
      probes.set(key, probe);
      probe.catch(() => probes.delete(key));
    }
    return probe;
  };

  return {
    name: "qemu",
    async ensureImage(label: string, progress?: ImageProgress): Promise<LocalImage> {
      // Loaded on first use: booting an image already resolved needs none of the builders' code.
      // images.yaml decides whether the label is pulled, built here, or pulled with a build fallback.
      const { ensureImage } = await import("@solstice/images");
      return ensureImage(label, {
        log: opts.log,
        ...(opts.imageCacheDir ? { cacheDir: opts.imageCacheDir } : {}),
        ...(progress ? { progress } : {}),
      });
    },
    reapOrphans: () => reapRunDirs(runRoot, opts.log),
    async savedState(image, signal) {
      if (!image.snapshot || image.keys !== "agent" || opts.snapshots === false) return undefined;
      const { accelerator } = await chooseAccelerator(image, signal);
      return templateFor({ vmName: `state-${image.label}`, image, log: opts.log }, accelerator);
    },
    async runsArch(arch, signal) {
      const binary = qemuBinaryFor(arch);
      await runCommand(binary, ["--version"], { timeoutMs: 10_000, ...(signal ? { signal } : {}) }).catch(
        (error: unknown) => {
          throw new VmError("unsupported", `this host cannot run ${arch} guests: ${binary} does not start`, {
            cause: error,
            hint: `apt-get install ${qemuSystemPackage(arch)}`,
          });
        },
      );
      return (
        configured(arch) ??
        probeAccelerator({ cacheDir, log: opts.log, arch, qemuBinary: binary, ...(signal ? { signal } : {}) })
      );
    },
    async boot(spec: VmSpec): Promise<QemuVm> {
      const { accelerator } = await chooseAccelerator(spec.image, spec.signal);
      const launch = {
        spec,
        runRoot,
        overlays,
        unreachableHosts,
        hostPorts,
        qemuBinary: qemuBinaryFor(spec.image.arch),
        accelerator,
        tscKhz,
        ...(opts.agentChannel ? { agentChannel: opts.agentChannel } : {}),
        ...addressRandomization,
      };
      if (spec.image.snapshot && spec.image.keys === "agent" && opts.snapshots !== false) {
        const restoreFrom = await templateFor(spec, accelerator);
        try {
          return await bootVm({ ...launch, restoreFrom });
        } catch (error) {
          if (spec.signal?.aborted) throw error;
          // A state QEMU cannot load is made again by the next boot; this one boots cold.
          spec.log.warn({ err: error, restoreFrom }, "restoring the snapshot failed; booting cold");
          await rm(restoreFrom, { force: true });
          await rm(templateDiskPath(restoreFrom), { force: true });
        }
      }
      return bootVm(launch);
    },
  };
}

async function bootVm(ctx: {
  spec: VmSpec;
  runRoot: string;
  overlays: OverlayMaker;
  unreachableHosts: readonly string[];
  hostPorts: readonly number[];
  qemuBinary: string;
  accelerator: Accelerator;
  tscKhz: number | undefined;
  /** Restore this saved state (`-incoming`) instead of booting. */
  restoreFrom?: string;
  /** Boot only until the key agent waits, save the state here; the caller destroys the VM. */
  saveStateTo?: string;
  /** What the agent serves the job on its channel (QemuBackendOptions.agentChannel; default "commands"). */
  agentChannel?: AgentChannel;
  /** With `saveStateTo`: where the VM's overlay goes once QEMU has exited (the state's disk layer). */
  saveDiskTo?: string;
  /** QemuBackendOptions.tcgAddressRandomization. */
  tcgAddressRandomization?: boolean;
}): Promise<QemuVm> {
  const { spec, accelerator } = ctx;
  const { image } = spec;
  const id = randomUUID();
  const log = spec.log.child({ vm: spec.vmName, vmId: id });
  if (spec.signal?.aborted) throw new VmError("aborted", `boot of ${spec.vmName} aborted before it started`);
  if (!isAbsolute(image.disk)) throw new VmError("image_unsupported", `image disk path is not absolute: ${image.disk}`);

  const bootTimeoutMs = spec.bootTimeoutMs ?? (accelerator === "kvm" ? 120_000 : 300_000);
  const boot = new AbortController();
  const deadline = setTimeout(() => boot.abort(), bootTimeoutMs);
  const onAbort = () => boot.abort();
  spec.signal?.addEventListener("abort", onAbort, { once: true });

  const runDir = await createRunDir(ctx.runRoot, spec.vmName, id.slice(0, 8));
  const overlayPath = join(runDir, "overlay.qcow2");
  const capture = new ConsoleCapture(join(runDir, "console.log"));
  const qmp = new QmpClient(join(runDir, "qmp.sock"));
  let launched: LaunchedVm | undefined;
  let qemuGone = false;
  let destroying: Promise<void> | undefined;
  /** The session served on the agent's channel (commands or SSH), until someone takes it. */
  let channelSession: GuestSession | undefined;

  const destroy = (): Promise<void> => {
    destroying ??= (async () => {
      channelSession?.close();
      channelSession = undefined;
      if (launched && !qemuGone) {
        await withDeadline(qmp.execute("quit", QUIT_DEADLINE_MS), QUIT_DEADLINE_MS).catch(() => undefined);
        await withDeadline(launched.qemuExit, QUIT_DEADLINE_MS).catch(() => undefined);
      }
      qmp.close();
      if (launched) {
        await killGroup(launched.qemu.pid, launched.qemuExit);
        await killGroup(
          launched.pasta.pid,
          launched.pasta.exitCode !== null || launched.pasta.signalCode !== null
            ? Promise.resolve()
            : new Promise<void>((done) => launched?.pasta.once("exit", () => done())),
        );
      }
      capture.end();
      if (ctx.saveDiskTo !== undefined) await rename(overlayPath, ctx.saveDiskTo).catch(() => undefined);
      await rm(runDir, { recursive: true, force: true });
      log.info("VM destroyed");
    })();
    return destroying;
  };

  const started = Date.now();
  try {
    const seedPath = join(runDir, "seed.img");
    // A restored guest's memory belongs with its template's disk layer, not the bare image.
    const [backing, backingFormat] =
      ctx.restoreFrom !== undefined ? [templateDiskPath(ctx.restoreFrom), "qcow2"] : [image.disk, image.diskFormat];
    await ctx.overlays.create(backing, backingFormat, overlayPath, boot.signal);
    const keys = generateJobKeys();
    // Images with a key agent take their keys after boot; the others read them from a seed.
    const agentSocket = image.keys === "agent" ? join(runDir, "ag.sock") : undefined;
    if (agentSocket === undefined) {
      await writeSeedIso({
        isoPath: seedPath,
        workDir: runDir,
        keys,
        instanceId: id,
        hostname: hostnameFor(spec.vmName),
        signal: boot.signal,
      });
    }
    const sshPort = await freeLocalPort();
    const args = qemuArgs({
      image,
      accelerator,
      cpus: spec.cpus ?? image.defaultCpus,
      memoryMiB: spec.memoryMiB ?? image.defaultMemoryMiB,
      overlayPath,
      ...(agentSocket === undefined ? { seedPath } : { agentSocket }),
      qmpSocket: join(runDir, "qmp.sock"),
      sshPort,
      ...(ctx.tscKhz !== undefined ? { hostTscKhz: ctx.tscKhz } : {}),
      ...(ctx.restoreFrom !== undefined ? { incomingState: ctx.restoreFrom } : {}),
      ...(ctx.tcgAddressRandomization !== undefined ? { tcgAddressRandomization: ctx.tcgAddressRandomization } : {}),
    });
    const start = ctx.restoreFrom ? "restore" : ctx.saveStateTo ? "template" : "boot";
    log.info({ accelerator, sshPort, runDir, image: image.label, start }, "starting VM");
    // Where a start's time goes, for the "VM ready" line: milliseconds since `started` at each mark.
    const phases: Record<string, number> = { prepared: Date.now() - started };
    const unreachable = await unreachableAddresses(ctx.unreachableHosts);
    launched = await launchInNetns({
      qemuBinary: ctx.qemuBinary,
      args,
      runDir,
      sshPort,
      hostPorts: ctx.hostPorts,
      unreachable,
      guestHeld: ctx.restoreFrom !== undefined,
      signal: boot.signal,
    });
    phases.launched = Date.now() - started;
    const current = launched;
    void current.qemuExit.then(() => {
      qemuGone = true;
      boot.abort();
    });
    current.qemu.stdout?.on("data", (chunk: Buffer) => capture.push(chunk));
    current.qemu.stdout?.on("end", () => capture.end());
    const record = {
      vmName: spec.vmName,
      ownerPid: process.pid,
      ownerStartTicks: processStartTicks(process.pid),
      ...pidRecord("qemu", current.qemu.pid),
      ...pidRecord("pasta", current.pasta.pid),
      sshPort,
    };
    await writeRunRecord(runDir, record);

    const ssh: SshTarget = {
      host: "127.0.0.1",
      port: sshPort,
      username: image.sshUser,
      privateKey: keys.client.privateKey,
      hostKey: keys.host.publicKey,
    };
    if (ctx.saveStateTo !== undefined) {
      if (agentSocket === undefined) throw new VmError("boot_failed", "only images with a key agent can be saved");
      await saveGuestState({ qmp, capture, agentSocket, statePath: ctx.saveStateTo, signal: boot.signal });
    } else {
      if (ctx.restoreFrom !== undefined) {
        await resumeIncoming(qmp, boot.signal, current.network);
        phases.resumed = Date.now() - started;
      }
      if (agentSocket !== undefined) {
        // The agent answers once its SSH server runs: no banner probe after it.
        // job-commands runs commands as the agent's user, root: an image with another SSH user
        // gets the SSH session on the channel instead.
        const wanted = ctx.agentChannel ?? "commands";
        const channel = await deliverKeys({
          socketPath: agentSocket,
          keys,
          hostname: hostnameFor(spec.vmName),
          signal: boot.signal,
          channel: wanted === "commands" && image.sshUser !== "root" ? "ssh" : wanted,
        });
        phases.agent = Date.now() - started;
        if (channel?.kind === "commands") {
          // The job's commands, on the agent's private channel (decision 0010): no handshake.
          channelSession = new ChannelSession(channel.socket, image.sshUser);
        } else if (channel) {
          // The job's SSH session, on the agent's private channel: opened as soon as the guest
          // serves it, with the same pinned host key and per-VM client key as over TCP. Bounded by
          // the boot's own deadline, not a connection's: it is part of the boot now, and a guest
          // starved by a busy host may take longer than a TCP handshake's bound.
          channelSession = await connectSsh(ssh, {
            sock: channel.socket,
            signal: boot.signal,
            readyTimeoutMs: Math.max(bootTimeoutMs - (Date.now() - started), 1_000),
          });
          phases.session = Date.now() - started;
        }
      } else {
        await waitForSshBanner(ssh.host, ssh.port, { signal: boot.signal, deadlineMs: bootTimeoutMs });
      }
      if (image.readiness === "cloud-init") await waitForCloudInit(ssh, boot.signal, capture);
      // The guest has its keys now (SSH answers with the seeded host key): the seed, which holds
      // the host key pair, leaves the disk at once rather than with the VM. QEMU keeps its open
      // file until it exits, so nothing in the guest changes.
      if (agentSocket === undefined) await rm(seedPath, { force: true });
    }
    const bootMs = Date.now() - started;
    log.info({ bootMs, phases, pooled: spec.pooled ?? false, start }, "VM ready");
    const qemuPid = current.qemu.pid ?? -1;
    const pastaPid = current.pasta.pid ?? -1;
    return {
      id,
      ssh,
      console: capture.lines,
      accelerator,
      bootMs,
      restored: ctx.restoreFrom !== undefined,
      guestIdentity: guestIdentity(spec.image, ctx.restoreFrom),
      ...(spec.image.node ? { guestNode: spec.image.node } : {}),
      runDir,
      qemuPid,
      pastaPid,
      destroy,
      async cutNetwork(): Promise<void> {
        if (qemuGone || current.qemu.pid === undefined) throw new VmError("qemu_exited", "the VM is gone");
        await cutNamespaceNetwork(current.qemu.pid);
        log.info("network cut: only the SSH forward is left");
      },
      exited: current.qemuExit.then(() => undefined),
      takeSession() {
        const session = channelSession;
        channelSession = undefined;
        return session?.open ? session : undefined;
      },
      async handOver(job) {
        // The run directory keeps its pool name; its record names the job, for whoever inspects it.
        await writeRunRecord(runDir, { ...record, vmName: job.vmName });
        job.log.info({ vmId: id, runDir, pooledFor: Date.now() - started - bootMs }, "warm VM handed over");
      },
      async powerDown(deadlineMs: number): Promise<void> {
        if (!qemuGone) {
          await withDeadline(qmp.execute("system_powerdown", deadlineMs), deadlineMs).catch(() => undefined);
          await withDeadline(current.qemuExit, deadlineMs).catch(() => undefined);
        }
        await destroy();
      },
    };
  } catch (err) {
    const failure = explainBootFailure(err, {
      spec,
      qemuGone,
      stderr: launched?.stderr() ?? "",
      tail: capture.tail(),
      bootTimeoutMs,
    });
    await destroy();
    log.warn({ code: failure.code }, failure.message);
    throw failure;
  } finally {
    clearTimeout(deadline);
    spec.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * What a guest is when it becomes ready: its image build and boot (or the saved state it was
 * restored from, which every restore of it shares bit for bit).
 */
function guestIdentity(image: LocalImage, restoredFrom: string | undefined): string {
  const boot = { label: image.label, disk: image.disk, recipe: image.recipeHash, kernel: image.kernel, restoredFrom };
  return createHash("sha256").update(JSON.stringify(boot)).digest("hex").slice(0, 16);
}

function explainBootFailure(
  err: unknown,
  ctx: { spec: VmSpec; qemuGone: boolean; stderr: string; tail: string; bootTimeoutMs: number },
): VmError {
  const details = `\n--- qemu stderr ---\n${ctx.stderr.trim() || "(none)"}\n--- console (last 30 lines) ---\n${ctx.tail || "(nothing)"}`;
  if (ctx.spec.signal?.aborted) return new VmError("aborted", `boot of ${ctx.spec.vmName} was aborted`, { cause: err });
  if (ctx.qemuGone) {
    return new VmError("qemu_exited", `QEMU exited while booting ${ctx.spec.vmName}${details}`, { cause: err });
  }
  if (err instanceof VmError && err.code === "boot_failed") {
    return new VmError("boot_failed", `${err.message}${details}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  if ((err as { code?: string }).code === "banner_timeout" || (err as { code?: string }).code === "aborted") {
    return new VmError("boot_timeout", `${ctx.spec.vmName} was not ready within ${ctx.bootTimeoutMs} ms${details}`, {
      cause: err,
      hint: "the guest may be slow under TCG; raise bootTimeoutMs or check the console above",
    });
  }
  return new VmError("boot_failed", `booting ${ctx.spec.vmName} failed: ${message}${details}`, { cause: err });
}

/** cloud-init images are ready for steps once cloud-init has finished (status 0 done, 2 done with warnings). */
/**
 * Waits in the guest until cloud-init has finished. The first connections may be cut while
 * cloud-init configures SSH, so a connection lost before the check could run is retried until
 * the boot deadline (the signal); a finished check that reports an error is a boot failure.
 */
async function waitForCloudInit(ssh: SshTarget, signal: AbortSignal, capture: ConsoleCapture): Promise<void> {
  for (;;) {
    let session: SshSession;
    try {
      session = await connectSsh(ssh, { signal });
    } catch (error) {
      if (!(error instanceof SshError) || error.code !== "connect_failed" || signal.aborted) throw error;
      await sleep(CLOUD_INIT_RETRY_MS, undefined, { signal });
      continue;
    }
    const output: string[] = [];
    const keep = (line: string) => {
      output.push(line);
      if (output.length > CLOUD_INIT_OUTPUT_LINES) output.shift();
    };
    let result: Awaited<ReturnType<SshSession["exec"]>>;
    try {
      result = await session.exec("cloud-init status --wait", { signal, onStdout: keep, onStderr: keep });
    } catch (error) {
      if (!(error instanceof SshError) || signal.aborted) throw error;
      continue; // the connection was cut mid-wait
    } finally {
      session.close();
    }
    if (result.exitCode === 0 || result.exitCode === 2) return;
    if (result.exitCode === null && !signal.aborted) continue;
    throw new VmError(
      "boot_failed",
      `cloud-init status --wait exited ${result.exitCode ?? result.signal}: ${output.join("\n")}\n--- console ---\n${capture.tail()}`,
    );
  }
}

async function killGroup(pid: number | undefined, exited: Promise<unknown>): Promise<void> {
  if (pid === undefined) return;
  try {
    // Each launcher was started detached, as the leader of its own process group.
    process.kill(-pid, "SIGKILL");
  } catch {
    return;
  }
  await withDeadline(exited, KILL_WAIT_MS).catch(() => undefined);
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function pidRecord(name: "qemu" | "pasta", pid: number | undefined): Record<string, number | string | undefined> {
  if (pid === undefined) return {};
  return { [`${name}Pid`]: pid, [`${name}StartTicks`]: processStartTicks(pid) };
}

function hostnameFor(vmName: string): string {
  return (
    vmName
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 63) || "solstice-vm"
  );
}
