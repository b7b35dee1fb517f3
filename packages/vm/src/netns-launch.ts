import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { VmError } from "./errors.ts";
import { ipInNamespace } from "./netns-cut.ts";

/**
 * Run inside the new user and network namespace before QEMU, as that namespace's root: wait until
 * pasta has configured it (a default route exists), so QEMU's user-mode network and port forward
 * bind in a namespace that works; make each address given as arguments unreachable (a `prohibit`
 * route beats the on-link and default routes pasta copied in, so the guest's connections to it
 * fail inside the namespace, before pasta could carry them out); then drop every capability and
 * start QEMU. `$1` is the number of addresses that follow, then QEMU's command line.
 */
const PREPARE_NAMESPACE = `i=0
until cut -f2 /proc/net/route | grep -qx 00000000; do
  i=$((i+1))
  if [ "$i" -gt 500 ]; then echo "solstice: pasta did not configure the VM network within 5 s" >&2; exit 97; fi
  sleep 0.01
done
n=$1; shift
while [ "$n" -gt 0 ]; do
  ip route add prohibit "$1" || { echo "solstice: could not make $1 unreachable from the VM" >&2; exit 98; }
  n=$((n-1)); shift
done
exec setpriv --inh-caps=-all --bounding-set=-all -- "$@"`;

/**
 * What runs QEMU in the new namespaces when the guest is held (a restore: QEMU loads the saved
 * state and runs nothing until `cont`): no script waiting for pasta, only the capabilities
 * dropped, so the state loads while pasta configures the namespace; the host then makes the
 * addresses unreachable (`heldNamespaceNetwork`) before the guest may run.
 */
const HELD_GUEST_LAUNCH = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"];

/** Bound on the namespace being created by the launcher before pasta is attached. */
const NAMESPACE_DEADLINE_MS = 5_000;
/** Bound on pasta configuring the namespace (its default route), as the launcher script's. */
const NETWORK_DEADLINE_MS = 5_000;
/** Most stderr kept from each process, for error messages. */
const MAX_STDERR_BYTES = 8 * 1024;

export interface LaunchedVm {
  readonly qemu: ChildProcess;
  readonly pasta: ChildProcess;
  /** Resolves when QEMU has exited (with its code or signal). */
  readonly qemuExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Resolves once the namespace's network is configured and the unreachable addresses are
   * prohibited there: at once when QEMU only started after that; for a held guest, the guest must
   * not run before it (rejects with the reason when it cannot be).
   */
  readonly network: Promise<void>;
  /** The last stderr output of QEMU and pasta. */
  stderr(): string;
}

/**
 * Starts QEMU in its own user and network namespace, connected to the outside by pasta:
 * - No privilege is needed: `unshare --user --map-root-user --net` makes this process's user the
 *   namespace's root, which is all that configuring the namespace's network takes, and pasta joins
 *   that user namespace to attach to it (docs/decisions/0004-rootless-vm-network.md). The same path
 *   serves a root host service and the non-root service in the container.
 * - The guest's gateway address (10.0.2.2) reaches the namespace's loopback, not the host's, and
 *   the host's own addresses inside the namespace are the namespace's (nothing listens there), so
 *   the guest cannot reach services on the host; outbound traffic still goes through pasta.
 * - `unreachable` addresses (the fleet's broker and database, wherever they are) are prohibited
 *   routes inside the namespace before QEMU starts.
 * - pasta forwards 127.0.0.1:sshPort on the host to the same port in the namespace, where QEMU's
 *   hostfwd listens. From the namespace back to the host, only `hostPorts` are forwarded, each
 *   alone (`-T <port>`): the guest reaches such a port at its gateway (10.0.2.2, which QEMU maps
 *   to the namespace's loopback, where pasta listens) and pasta connects it to the same port on
 *   the host's loopback. No other host port is reachable (no UDP at all: -U none).
 * - Both die with this process (parent-death signal via setpriv); QEMU runs with no capabilities.
 */
export async function launchInNetns(opts: {
  qemuBinary: string;
  args: readonly string[];
  runDir: string;
  sshPort: number;
  /** Ports of the host's loopback the guest may reach at its gateway address (the job cache's). */
  hostPorts?: readonly number[];
  /** IPv4/IPv6 addresses the guest must not reach. */
  unreachable: readonly string[];
  /**
   * QEMU holds the guest until it is resumed (`-incoming`): QEMU starts before pasta has
   * configured the namespace, and the caller resumes the guest only once `network` resolved.
   */
  guestHeld?: boolean;
  signal: AbortSignal;
}): Promise<LaunchedVm> {
  let stderr = "";
  const collect = (prefix: string) => (chunk: Buffer) => {
    stderr = `${stderr}${prefix}${chunk.toString("utf8")}`.slice(-MAX_STDERR_BYTES);
  };
  const qemu = spawn(
    "setpriv",
    [
      "--pdeathsig",
      "KILL",
      "--",
      "unshare",
      "--user",
      "--map-root-user",
      "--net",
      "--",
      ...(opts.guestHeld
        ? HELD_GUEST_LAUNCH
        : ["sh", "-c", PREPARE_NAMESPACE, "solstice-vm", String(opts.unreachable.length), ...opts.unreachable]),
      opts.qemuBinary,
      ...opts.args,
    ],
    { cwd: opts.runDir, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  const qemuExit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    qemu.on("exit", (code, signal) => resolve({ code, signal }));
    qemu.on("error", (err) => {
      collect("launcher: ")(Buffer.from(err.message));
      resolve({ code: null, signal: null });
    });
  });
  qemu.stderr?.on("data", collect(""));
  const pid = qemu.pid;
  if (pid === undefined) throw new VmError("boot_failed", "could not start QEMU (setpriv/unshare missing?)");
  await waitForOwnNamespace(pid, qemuExit, opts.signal);
  const pasta = spawn(
    "setpriv",
    [
      "--pdeathsig",
      "KILL",
      "--",
      "pasta",
      // As whoever runs the service (pasta's default as root is to become nobody, who could not
      // join the namespace), into the user namespace that owns the VM's network namespace.
      "--runas",
      `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`,
      "--userns",
      `/proc/${pid}/ns/user`,
      "--netns",
      `/proc/${pid}/ns/net`,
      "--config-net",
      "--no-map-gw",
      "-T",
      hostPortsSpec(opts.hostPorts ?? []),
      "-U",
      "none",
      "-u",
      "none",
      "-t",
      `127.0.0.1/${opts.sshPort}`,
      "-q",
      "-f",
    ],
    { cwd: opts.runDir, stdio: ["ignore", "ignore", "pipe"], detached: true },
  );
  // pasta also writes "Failed to send … to syslog" noise to stderr when there is no syslog.
  pasta.stderr?.on("data", (chunk: Buffer) => {
    const text = chunk
      .toString("utf8")
      .split("\n")
      .filter((line) => line !== "" && !line.includes("to syslog"))
      .join("\n");
    if (text) collect("pasta: ")(Buffer.from(`${text}\n`));
  });
  pasta.on("error", (err) => collect("pasta: ")(Buffer.from(err.message)));
  const network = opts.guestHeld
    ? heldNamespaceNetwork({
        pid,
        unreachable: opts.unreachable,
        runDir: opts.runDir,
        exited: qemuExit,
        signal: opts.signal,
      })
    : Promise.resolve();
  // Awaited by the caller before the guest runs; until then a failure must not go unhandled.
  network.catch(() => undefined);
  return { qemu, pasta, qemuExit, network, stderr: () => stderr };
}

/**
 * For a held guest: waits until pasta has configured the namespace of `pid` (its default route),
 * then prohibits the unreachable addresses there in one `ip -batch` (as the launcher script does
 * for a guest that runs at once; added after pasta's routes, which a prohibited gateway address
 * would otherwise break).
 */
async function heldNamespaceNetwork(opts: {
  pid: number;
  unreachable: readonly string[];
  runDir: string;
  exited: Promise<unknown>;
  signal: AbortSignal;
}): Promise<void> {
  await waitForLauncher({
    ready: () => hasDefaultRoute(opts.pid),
    exited: opts.exited,
    signal: opts.signal,
    deadlineMs: NETWORK_DEADLINE_MS,
    intervalMs: 2,
    gone: "QEMU exited before its network namespace was configured",
    late: new VmError("boot_failed", `pasta did not configure the VM network within ${NETWORK_DEADLINE_MS} ms`),
  });
  if (opts.unreachable.length === 0) return;
  const batch = join(opts.runDir, "unreachable.ip");
  await writeFile(batch, opts.unreachable.map((address) => `route add prohibit ${address}\n`).join(""));
  await ipInNamespace(opts.pid, ["-batch", batch], opts.signal).catch((error: unknown) => {
    throw new VmError("boot_failed", `could not make ${opts.unreachable.join(", ")} unreachable from the VM`, {
      cause: error,
    });
  });
}

/** Whether the network namespace of `pid` has an IPv4 default route (pasta has configured it). */
function hasDefaultRoute(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/net/route`, "utf8")
      .split("\n")
      .some((line) => line.split("\t")[1] === "00000000");
  } catch {
    return false;
  }
}

/**
 * pasta's `-T` argument: each port alone, `none` when there is none. (pasta takes no bind address
 * for this direction; inside the VM's namespace only QEMU's user network could connect anyway.)
 */
function hostPortsSpec(ports: readonly number[]): string {
  for (const port of ports) {
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new VmError("boot_failed", `invalid host port ${port}`);
  }
  return ports.length === 0 ? "none" : ports.join(",");
}

/**
 * Waits until the launcher has entered its new user and network namespace and the user namespace
 * has its root mapped, so pasta attaches to the VM's namespace and never to the host's, and finds a
 * user namespace it can join.
 */
async function waitForOwnNamespace(pid: number, exited: Promise<unknown>, signal: AbortSignal): Promise<void> {
  const ours = readlinkSync("/proc/self/ns/net");
  await waitForLauncher({
    ready: () => {
      try {
        const ns = readlinkSync(`/proc/${pid}/ns/net`);
        return ns !== ours && readFileSync(`/proc/${pid}/uid_map`, "utf8").trim() !== "";
      } catch {
        // The process is between execs or gone; the next round tells.
        return false;
      }
    },
    exited,
    signal,
    deadlineMs: NAMESPACE_DEADLINE_MS,
    intervalMs: 5,
    gone: "the VM launcher exited before its network namespace was ready",
    late: new VmError("boot_failed", `the VM network namespace was not ready within ${NAMESPACE_DEADLINE_MS} ms`, {
      hint: "check that user namespaces work here: unshare --user --map-root-user --net true",
    }),
  });
}

/**
 * Polls `ready` every `intervalMs` until it holds; fails with `gone` once the launcher (QEMU) has
 * exited, when the boot is aborted, or with `late` after `deadlineMs`.
 */
async function waitForLauncher(opts: {
  ready: () => boolean;
  exited: Promise<unknown>;
  signal: AbortSignal;
  deadlineMs: number;
  intervalMs: number;
  gone: string;
  late: VmError;
}): Promise<void> {
  let gone = false;
  void opts.exited.then(() => {
    gone = true;
  });
  const until = Date.now() + opts.deadlineMs;
  while (!opts.ready()) {
    if (gone) throw new VmError("qemu_exited", opts.gone);
    if (opts.signal.aborted) throw new VmError("aborted", "boot aborted");
    if (Date.now() > until) throw opts.late;
    await sleep(opts.intervalMs);
  }
}
