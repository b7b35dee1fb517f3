import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { JobKeys } from "@solstice/ssh";
import { dropbearHostKey } from "@solstice/ssh";
import type { ConsoleCapture } from "./console-capture.ts";
import { VmError } from "./errors.ts";

/** Pause between attempts to reach the agent socket before QEMU has created it. */
const CONNECT_RETRY_MS = 10;
/** Pause between looks at the console while the agent scrubs. */
const SCRUB_POLL_MS = 20;
/** Bytes of host entropy credited to the guest, forcing its CRNG to reseed. */
const RESEED_BYTES = 32;

/**
 * What the agent serves on its channel for the job once it has the keys (decision 0010): the
 * job's commands (job-commands), an SSH session (`dropbear -i`), or nothing (SSH on port 22 only).
 */
export type AgentChannel = "commands" | "ssh" | "none";

export interface AgentDelivery {
  readonly socketPath: string;
  readonly keys: JobKeys;
  readonly hostname: string;
  readonly signal: AbortSignal;
  /** Default "commands". */
  readonly channel?: AgentChannel;
}

/** The agent's channel, serving what it was asked for; its greeting read (SSH's pushed back). */
export interface ServedChannel {
  readonly kind: "commands" | "ssh";
  readonly socket: Socket;
}

/** job-commands' first line (packages/images/recipes/job-commands.c). */
const COMMANDS_GREETING = "SOLSTICE-COMMANDS ";

/** Longest answer line the host reads from the agent (an SSH identification line is at most 255 bytes). */
const MAX_ANSWER_BYTES = 4096;

/**
 * Gives the guest's key agent (images with `keys: agent`) its clock, fresh entropy with a forced
 * CRNG reseed, hostname, authorized key and host key, and resolves once its SSH server runs with
 * them. An agent that serves the job's commands on its own channel (`COMMANDS`) answers with
 * job-commands' greeting, one that serves SSH there (`SESSION`) with the server's identification
 * line: the channel is returned for the job (decision 0010), the SSH line still unread. One that
 * serves neither (asked for none, or an older agent) answers READY once dropbear listens on port
 * 22, and nothing is returned. Lines sent before the guest opens its port wait in the socket: QEMU reads
 * nothing from it until the guest side is open. A FAILED answer, or the agent hanging up, is a
 * boot failure: the guest never runs SSH with keys we did not give it.
 */
export async function deliverKeys(delivery: AgentDelivery): Promise<ServedChannel | undefined> {
  const { answer, socket } = await exchange(
    delivery.socketPath,
    agentMessage(delivery.keys, delivery.hostname, { channel: delivery.channel ?? "commands" }),
    delivery.signal,
  );
  if (answer.startsWith(COMMANDS_GREETING)) return { kind: "commands", socket };
  if (answer.startsWith("SSH-")) return { kind: "ssh", socket };
  socket.destroy();
  if (answer !== "READY") throw new VmError("boot_failed", `the guest's key agent refused to start SSH: ${answer}`);
  return undefined;
}

/**
 * Sends `message` (items of the agent protocol) to the agent listening on `socketPath`, once QEMU
 * has created it, and returns the agent's answer: `READY`, `FAILED <why>`, job-commands' greeting
 * or the identification line of the SSH server it serves on the channel.
 */
export async function tellAgent(socketPath: string, message: string, signal: AbortSignal): Promise<string> {
  const { answer, socket } = await exchange(socketPath, message, signal);
  socket.destroy();
  return answer;
}

/**
 * The agent's answer, and its socket still open. After an SSH identification line the socket is
 * paused with that line pushed back, so an SSH client reads the stream from its start; after
 * job-commands' greeting, paused with what follows the line pushed back.
 */
async function exchange(
  socketPath: string,
  message: string,
  signal: AbortSignal,
): Promise<{ answer: string; socket: Socket }> {
  const socket = await connectWhenListening(socketPath, signal);
  let settle: { resolve(line: string): void; reject(error: VmError): void } | undefined;
  let pending = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    for (let end = pending.indexOf(0x0a); end >= 0; end = pending.indexOf(0x0a)) {
      const line = pending.subarray(0, end).toString("utf8").trim();
      if (line.startsWith("SSH-")) {
        // The SSH server speaks from here on: its first line goes back for the SSH client.
        socket.pause();
        socket.unshift(pending);
        settle?.resolve(line);
        return;
      }
      if (line.startsWith(COMMANDS_GREETING)) {
        // job-commands' frames follow its greeting.
        socket.pause();
        if (pending.length > end + 1) socket.unshift(pending.subarray(end + 1));
        settle?.resolve(line);
        return;
      }
      if (line === "READY" || line.startsWith("FAILED")) {
        settle?.resolve(line);
        return;
      }
      pending = pending.subarray(end + 1);
    }
    if (pending.length > MAX_ANSWER_BYTES)
      settle?.reject(new VmError("boot_failed", "the key agent's answer is too long"));
  };
  const onError = (err: Error) => settle?.reject(new VmError("boot_failed", `key agent socket: ${err.message}`));
  const onClose = () => settle?.reject(new VmError("boot_failed", "the key agent's socket closed before it answered"));
  const onAbort = () => settle?.reject(new VmError("aborted", "key delivery aborted"));
  try {
    const answer = await new Promise<string>((resolve, reject) => {
      settle = { resolve, reject };
      socket.on("data", onData).on("error", onError).on("close", onClose);
      signal.addEventListener("abort", onAbort, { once: true });
      // Aborted while the socket connected: a listener added now would never fire.
      if (signal.aborted) onAbort();
      socket.write(message);
    });
    return { answer, socket };
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    settle = undefined;
    socket.off("data", onData).off("error", onError).off("close", onClose);
    signal.removeEventListener("abort", onAbort);
  }
}

/** The agent's input, one item per line (the protocol is described in recipes/tiny-fast-init.sh). */
export function agentMessage(keys: JobKeys, hostname: string, opts: { channel?: AgentChannel } = {}): string {
  if (!/^[a-z0-9-]{1,63}$/.test(hostname)) throw new VmError("boot_failed", `unusable hostname ${hostname}`);
  const items = [
    `TIME ${Math.floor(Date.now() / 1000)}`,
    `RESEED ${randomBytes(RESEED_BYTES).toString("hex")}`,
    `NAME ${hostname}`,
    `AUTH ${keys.client.publicKey.replace(/\s+/g, " ").trim()}`,
    // Already in dropbear's format, as printf octal escapes: the guest writes it with a builtin.
    `HOSTKEY_DB ${[...dropbearHostKey(keys.host.privateKey)].map((b) => `\\${b.toString(8).padStart(3, "0")}`).join("")}`,
    // Serve the job's commands (or an SSH session) on this channel too (decision 0010); an agent
    // that does not know the item says so on its console and answers READY as before.
    ...({ commands: ["COMMANDS"], ssh: ["SESSION"], none: [] } as const)[opts.channel ?? "commands"],
    "GO",
  ];
  return `${items.join("\n")}\n`;
}

/** The agent's console line once it zeroed the template's free memory. */
const SCRUBBED = /solstice-guest\[[0-9.]+\]: scrubbed/;
/**
 * Zeroing ~400 MiB under TCG takes a few seconds on a quiet host; a 1 GiB Debian template's ~850 MiB
 * took over 60 s at load 20-23 (2 cores). The template's own deadline (300 s) still bounds it all.
 */
const SCRUB_DEADLINE_MS = 180_000;

/**
 * Asks a template's agent (before any key) to zero its free memory, and waits for its console to
 * say so. Freed pages keep their old bytes (the unpacked initramfs's, for one) and QEMU saves every
 * non-zero page: this takes tiny-fast's saved state from 93 to 60 MB, which every restore loads.
 * The agent goes back to waiting for keys once the host hangs up.
 */
export async function scrubFreeMemory(opts: {
  readonly socketPath: string;
  readonly capture: ConsoleCapture;
  readonly signal: AbortSignal;
}): Promise<void> {
  const socket = await connectWhenListening(opts.socketPath, opts.signal);
  try {
    socket.write("SCRUB\n");
    const deadline = Date.now() + SCRUB_DEADLINE_MS;
    while (!SCRUBBED.test(opts.capture.tail())) {
      if (Date.now() > deadline) throw new VmError("boot_failed", "the template's agent did not scrub its memory");
      await sleep(SCRUB_POLL_MS, undefined, { signal: opts.signal });
    }
  } finally {
    socket.destroy();
  }
}

async function connectWhenListening(path: string, signal: AbortSignal): Promise<Socket> {
  for (;;) {
    signal.throwIfAborted();
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path);
        socket.once("connect", () => {
          socket.removeAllListeners("error");
          resolve(socket);
        });
        socket.once("error", reject);
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ECONNREFUSED") {
        throw new VmError("boot_failed", `cannot reach the key agent socket ${path}`, { cause: error });
      }
      await sleep(CONNECT_RETRY_MS, undefined, { signal }).catch(() => undefined);
    }
  }
}
