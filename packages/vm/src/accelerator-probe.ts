import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, readFile, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { join } from "node:path";
import { type GuestArch, hostArch } from "@solstice/images";
import type { Logger } from "pino";
import { archExtraArgs, probeMachine, qemuSystemBinary, serialConsole } from "./guest-machine.ts";
import { runCommand } from "./run-command.ts";

export type Accelerator = "kvm" | "tcg";

export interface AcceleratorChoice {
  readonly accelerator: Accelerator;
  /** Why, in words for the log. */
  readonly reason: string;
}

export interface ProbeOptions {
  /** The guests' architecture (default x86_64): KVM runs only guests of the host's own. */
  readonly arch?: GuestArch;
  /** The host's architecture (default: this machine's); tests give another. */
  readonly hostArch?: GuestArch | undefined;
  /** A bootable kernel: the probe boots it under KVM and waits for its first console line. */
  readonly kernel?: string;
  /** Where the verdict is cached, per host kernel release and QEMU version. */
  readonly cacheDir: string;
  readonly log: Logger;
  readonly signal?: AbortSignal;
  /** Bound on the probe boot (default 10000). */
  readonly deadlineMs?: number;
  readonly qemuBinary?: string;
  /**
   * The KVM device that must open before a probe boot is worth trying (default /dev/kvm; QEMU
   * itself always opens /dev/kvm). Tests give another path to take each branch on any host.
   */
  readonly kvmDevice?: string;
  /** Where the CPU flags are read when there is no kernel to boot (default /proc/cpuinfo). */
  readonly cpuinfoPath?: string;
}

/**
 * Decides between KVM and TCG by running a guest, not by opening /dev/kvm: on some hosts (nested
 * PVM) /dev/kvm opens but cannot run an ordinary guest. Boots `kernel` with no root under
 * `-accel kvm -cpu host`; any console output within the deadline means KVM works. The verdict of a
 * real boot is cached in `cacheDir`; without a kernel the CPU flags decide and nothing is cached.
 */
export async function probeAccelerator(opts: ProbeOptions): Promise<AcceleratorChoice> {
  const choice = await decide(opts);
  opts.log.info(
    { accelerator: choice.accelerator, reason: choice.reason },
    `using ${choice.accelerator}: ${choice.reason}`,
  );
  return choice;
}

async function decide(opts: ProbeOptions): Promise<AcceleratorChoice> {
  const arch = opts.arch ?? "x86_64";
  const host = "hostArch" in opts ? opts.hostArch : hostArch();
  if (arch !== host) {
    // Not cached: nothing was probed, and no KVM device can change it.
    return {
      accelerator: "tcg",
      reason: `${arch} guest on ${host ?? "an unknown"} host: KVM runs only the host's own architecture`,
    };
  }
  const qemu = opts.qemuBinary ?? qemuSystemBinary(arch);
  const device = opts.kvmDevice ?? "/dev/kvm";
  try {
    await access(device, constants.R_OK | constants.W_OK);
  } catch (err) {
    // Not cached: nothing was probed, and the device may appear (a module loaded, a group granted).
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "is missing" : "is not accessible";
    return { accelerator: "tcg", reason: `${device} ${why}` };
  }
  const version = (await runCommand(qemu, ["--version"], { timeoutMs: 10_000 })).stdout.split("\n")[0] ?? "unknown";
  const cacheFile = join(opts.cacheDir, `accelerator-${safe(release())}-${safe(version)}.json`);
  try {
    const cached = JSON.parse(await readFile(cacheFile, "utf8")) as AcceleratorChoice;
    if (cached.accelerator === "kvm" || cached.accelerator === "tcg") {
      return { accelerator: cached.accelerator, reason: `${cached.reason} (cached in ${cacheFile})` };
    }
  } catch {
    // No verdict cached yet for this kernel and QEMU: probe below.
  }
  if (!opts.kernel) {
    const cpuinfo = await readFile(opts.cpuinfoPath ?? "/proc/cpuinfo", "utf8").catch(() => "");
    // Only x86 CPUs name their virtualisation extension in /proc/cpuinfo.
    if (arch !== "x86_64") return { accelerator: "kvm", reason: `${device} opens (no kernel to probe with)` };
    return /\b(vmx|svm)\b/.test(cpuinfo)
      ? { accelerator: "kvm", reason: `${device} opens and the CPU has vmx/svm (no kernel to probe with)` }
      : { accelerator: "tcg", reason: `${device} opens but the CPU has no vmx/svm flag (nested or PVM KVM)` };
  }
  const choice = await bootProbe(qemu, arch, opts.kernel, opts.deadlineMs ?? 10_000, opts.signal);
  // An aborted probe proved nothing about KVM: it must not be cached as a TCG verdict.
  opts.signal?.throwIfAborted();
  await mkdir(opts.cacheDir, { recursive: true });
  await writeFile(cacheFile, `${JSON.stringify(choice)}\n`);
  return choice;
}

function bootProbe(
  qemu: string,
  arch: GuestArch,
  kernel: string,
  deadlineMs: number,
  signal?: AbortSignal,
): Promise<AcceleratorChoice> {
  return new Promise((resolve) => {
    const child = spawn(
      qemu,
      [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-machine",
        probeMachine(arch),
        ...archExtraArgs(arch, "kvm"),
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "256",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        kernel,
        "-append",
        `console=${serialConsole(arch)} panic=-1`,
      ],
      { stdio: ["ignore", "pipe", "pipe"], ...(signal ? { signal } : {}) },
    );
    let stderr = "";
    let done = false;
    const finish = (choice: AcceleratorChoice) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      resolve(choice);
    };
    const timer = setTimeout(
      () => finish({ accelerator: "tcg", reason: `a kernel under KVM printed nothing within ${deadlineMs} ms` }),
      deadlineMs,
    );
    child.stdout.on("data", () => finish({ accelerator: "kvm", reason: "a probe kernel booted under KVM" }));
    child.stderr.on("data", (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString("utf8");
    });
    child.on("error", (err) => finish({ accelerator: "tcg", reason: `the KVM probe could not run: ${err.message}` }));
    child.on("close", (code) =>
      finish({
        accelerator: "tcg",
        reason: `qemu -accel kvm -cpu host exited (${code}) before the kernel printed anything: ${firstLines(stderr)}`,
      }),
    );
  });
}

function firstLines(text: string): string {
  return text.trim().split("\n").slice(0, 2).join(" / ") || "no error output";
}

function safe(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80);
}
