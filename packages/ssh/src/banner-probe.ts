import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { SshError } from "./errors.ts";

/** How long a probe waits for the banner while the guest may not be up yet. */
const EARLY_PATIENCE_MS = 150;
/** How long a probe waits once the guest's network is known to answer (a slow server, e.g. OpenSSH under TCG). */
const ANSWERING_PATIENCE_MS = 5_000;
/** Pause between probes. */
const PROBE_INTERVAL_MS = 50;
/**
 * Refusals this early come from the forward itself (QEMU not listening yet), not from the guest.
 */
const FORWARD_SETTLE_MS = 1_000;

type ProbeResult = "banner" | "refused" | "silent";

/**
 * Resolves once something on host:port sends an SSH banner ("SSH-"), without polling an SSH
 * client with a long connect timeout (see BOOT-SPEED.md).
 *
 * A user-mode port forward accepts every connection at once, so the host cannot tell a guest
 * that is not up (the forwarded SYN goes unanswered and the connection just hangs) from an SSH
 * server that accepted but is slow to send its banner (OpenSSH forks and re-executes per
 * connection: over a second under TCG). The tell is a refusal: once the guest's network stack
 * answers with a reset (port closed), it is up, and from then on a connection that stays open
 * means the server accepted it, so the probe waits for the banner instead of hanging up after
 * 150 ms. Refusals in the first second are not counted: they come from the port forward
 * before QEMU listens. One probe at a time, so a slow server is never flooded (MaxStartups).
 */
export async function waitForSshBanner(
  host: string,
  port: number,
  opts: { signal?: AbortSignal; deadlineMs: number },
): Promise<void> {
  const started = Date.now();
  const until = started + opts.deadlineMs;
  const aborted = () => new SshError("aborted", `waiting for SSH on ${host}:${port} was aborted`);
  let guestAnswers = false;
  let attempts = 0;
  while (Date.now() < until) {
    if (opts.signal?.aborted) throw aborted();
    attempts++;
    const patience = Math.min(
      guestAnswers ? ANSWERING_PATIENCE_MS : EARLY_PATIENCE_MS,
      Math.max(1, until - Date.now()),
    );
    const result = await probeOnce(host, port, patience, opts.signal);
    if (result === "banner") return;
    if (result === "refused" && Date.now() - started >= FORWARD_SETTLE_MS) guestAnswers = true;
    try {
      await sleep(PROBE_INTERVAL_MS, undefined, opts.signal ? { signal: opts.signal } : undefined);
    } catch {
      throw aborted();
    }
  }
  throw new SshError("banner_timeout", `no SSH banner on ${host}:${port} within ${opts.deadlineMs} ms`, {
    hint: `${attempts} probes got no banner; check the VM console log`,
  });
}

function probeOnce(host: string, port: number, patienceMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let received = "";
    let opened = false;
    const finish = (result: ProbeResult) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = () => finish("silent");
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => finish("silent"), patienceMs);
    socket.on("connect", () => {
      opened = true;
    });
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
      if (received.startsWith("SSH-")) finish("banner");
      else if (received.length >= 4) finish("refused");
    });
    // The forward closing an accepted connection before any banner is the guest's reset.
    socket.on("close", () => finish(opened ? "refused" : "silent"));
    socket.on("error", () => finish("silent"));
  });
}
