import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { SshError } from "./errors.ts";

/** How long one probe waits for the banner: longer reads quantize readiness into big steps. */
const PROBE_READ_MS = 100;
/** Pause between probes after a refused or silent connection. */
const PROBE_INTERVAL_MS = 30;

/**
 * Resolves once something on host:port sends an SSH banner ("SSH-"). Probes with short reads and
 * retries every ~30 ms instead of waiting on a long SSH connect timeout (see BOOT-SPEED.md).
 * Rejects with `banner_timeout` after `deadlineMs`, or `aborted` when the signal fires.
 */
export async function waitForSshBanner(
  host: string,
  port: number,
  opts: { signal?: AbortSignal; deadlineMs: number },
): Promise<void> {
  const until = Date.now() + opts.deadlineMs;
  let attempts = 0;
  while (Date.now() < until) {
    if (opts.signal?.aborted) throw new SshError("aborted", `waiting for SSH on ${host}:${port} was aborted`);
    attempts++;
    if (await probeOnce(host, port)) return;
    try {
      await sleep(PROBE_INTERVAL_MS, undefined, { signal: opts.signal });
    } catch {
      throw new SshError("aborted", `waiting for SSH on ${host}:${port} was aborted`);
    }
  }
  throw new SshError("banner_timeout", `no SSH banner on ${host}:${port} within ${opts.deadlineMs} ms`, {
    hint: `${attempts} probes failed; check the VM console log`,
  });
}

function probeOnce(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let received = "";
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    // The read bound starts at connect time; a connect that hangs is bounded by the same timer.
    const timer = setTimeout(() => finish(false), PROBE_READ_MS);
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
      if (received.startsWith("SSH-")) finish(true);
      else if (received.length >= 4) finish(false);
    });
    socket.on("error", () => finish(false));
    socket.on("close", () => finish(false));
  });
}
