import { VmError } from "./errors.ts";
import { runCommand } from "./run-command.ts";

/** Bound on each `ip` call inside the VM's network namespace. */
const IP_DEADLINE_MS = 10_000;

/**
 * Cuts a qemu VM off every network but its SSH forward (the label policy `none-after-checkout`).
 *
 * The guest's outbound traffic leaves QEMU's user-mode network as sockets in the VM's own network
 * namespace, and reaches the world only through the link pasta made there. Taking every link
 * but loopback down removes the namespace's routes, so each new connection the guest opens fails
 * there (and pasta gets no more router advertisements to restore one). The SSH forward does not
 * use that link: pasta splices the host's 127.0.0.1:port to the namespace's loopback, where
 * QEMU's hostfwd listens, so the orchestrator keeps its session. `pid` is any process inside the
 * namespace (the QEMU launcher). Checks that no route is left before it resolves.
 */
export async function cutNamespaceNetwork(pid: number, signal?: AbortSignal): Promise<void> {
  const inNamespace = (...args: string[]) => ipInNamespace(pid, ["-j", ...args], signal);
  const links = parseJson<{ ifname?: string; link_type?: string }[]>((await inNamespace("link", "show")).stdout);
  for (const link of links) {
    if (!link.ifname || link.link_type === "loopback") continue;
    await inNamespace("link", "set", "dev", link.ifname, "down");
  }
  const left = [
    ...parseJson<{ dst?: string; dev?: string }[]>((await inNamespace("-4", "route", "show")).stdout),
    ...parseJson<{ dst?: string; dev?: string }[]>((await inNamespace("-6", "route", "show")).stdout),
  ].filter((route) => route.dev !== "lo");
  if (left.length > 0) {
    throw new VmError("command_failed", `routes left in the VM's network namespace: ${JSON.stringify(left)}`, {
      hint: "the guest may still reach the network; the job is stopped",
    });
  }
}

/**
 * Runs `ip` in the network namespace of `pid` (a process of a VM's launcher), in its user
 * namespace too, whose root we are (it owns the network namespace), keeping our own credentials.
 */
export function ipInNamespace(
  pid: number,
  args: readonly string[],
  signal?: AbortSignal,
): Promise<{ stdout: string; stderr: string }> {
  return runCommand(
    "nsenter",
    [`--user=/proc/${pid}/ns/user`, `--net=/proc/${pid}/ns/net`, "--preserve-credentials", "ip", ...args],
    { timeoutMs: IP_DEADLINE_MS, ...(signal ? { signal } : {}) },
  );
}

function parseJson<T>(text: string): T {
  // `ip -j` prints nothing at all for an empty route table.
  return (text.trim() === "" ? [] : JSON.parse(text)) as T;
}
