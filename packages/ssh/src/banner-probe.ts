import { connect, type Socket } from "node:net";
import { SshError } from "./errors.ts";

/** A new probe starts this often, so readiness is seen within about this much of the banner. */
const PROBE_INTERVAL_MS = 100;
/**
 * How long one probe waits for the banner. A user-mode port forward accepts at once even while
 * the guest is down, so a silent connection says nothing; but OpenSSH under TCG can take well
 * a second or more to send its banner (it forks and re-executes per connection), so a probe must
 * not give up quickly either. Probes therefore overlap: each waits up to this long, and a new
 * one starts every PROBE_INTERVAL_MS.
 */
const PROBE_PATIENCE_MS = 5_000;
/** Bound on probes open at once. */
const MAX_OPEN_PROBES = PROBE_PATIENCE_MS / PROBE_INTERVAL_MS;

/**
 * Resolves once something on host:port sends an SSH banner ("SSH-"). Never polls with an SSH
 * client and a long connect timeout (see BOOT-SPEED.md): overlapping raw probes see the banner
 * within ~100 ms of the guest sending it, whether the server is fast (dropbear) or slow to
 * answer (OpenSSH under TCG). Rejects with `banner_timeout` after `deadlineMs`, or `aborted`
 * when the signal fires.
 */
export function waitForSshBanner(
  host: string,
  port: number,
  opts: { signal?: AbortSignal; deadlineMs: number },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const open = new Set<Socket>();
    let attempts = 0;
    const finish = (error?: SshError) => {
      clearInterval(ticker);
      clearTimeout(deadline);
      opts.signal?.removeEventListener("abort", onAbort);
      for (const socket of open) socket.destroy();
      open.clear();
      if (error) reject(error);
      else resolve();
    };
    const onAbort = () => finish(new SshError("aborted", `waiting for SSH on ${host}:${port} was aborted`));
    const probe = () => {
      if (open.size >= MAX_OPEN_PROBES) return;
      attempts++;
      const socket = connect({ host, port });
      open.add(socket);
      let received = "";
      const drop = () => {
        socket.destroy();
        open.delete(socket);
      };
      socket.setTimeout(PROBE_PATIENCE_MS, drop);
      socket.on("data", (chunk: Buffer) => {
        received += chunk.toString("latin1");
        if (received.startsWith("SSH-")) finish();
        else if (received.length >= 4) drop();
      });
      socket.on("error", drop);
      socket.on("close", drop);
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const ticker = setInterval(probe, PROBE_INTERVAL_MS);
    const deadline = setTimeout(
      () =>
        finish(
          new SshError("banner_timeout", `no SSH banner on ${host}:${port} within ${opts.deadlineMs} ms`, {
            hint: `${attempts} probes got no banner; check the VM console log`,
          }),
        ),
      opts.deadlineMs,
    );
    probe();
  });
}
