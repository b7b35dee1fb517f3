import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { generateJobKeys } from "@solstice/ssh";
import { agentMessage, deliverKeys, VmError } from "@solstice/vm";

// The host's side of the agent protocol against a stand-in for QEMU's socket: what the guest's
// agent answers is scripted here; the real agent is exercised in fast-boot.test.ts.
const dir = join(tmpdir(), `solstice-agent-${randomUUID().slice(0, 8)}`);
mkdirSync(dir, { recursive: true });
after(() => rmSync(dir, { recursive: true, force: true }));

/** A socket at a fresh path whose peer, once the host's GO arrives, writes `answer` in `chunks`. */
async function fakeAgent(
  chunks: readonly string[],
): Promise<{ path: string; server: Server; received: Promise<string> }> {
  const path = join(dir, `${randomUUID().slice(0, 8)}.sock`);
  let deliver: (text: string) => void = () => {};
  const received = new Promise<string>((resolve) => {
    deliver = resolve;
  });
  const server = createServer((socket: Socket) => {
    let text = "";
    socket.on("data", async (chunk: Buffer) => {
      text += chunk.toString();
      if (!text.endsWith("GO\n")) return;
      deliver(text);
      for (const piece of chunks) {
        socket.write(piece);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server, received };
}

async function readAll(socket: Socket, bytes: number): Promise<string> {
  let text = "";
  socket.resume();
  for await (const chunk of socket) {
    text += (chunk as Buffer).toString();
    if (text.length >= bytes) break;
  }
  return text;
}

const keys = generateJobKeys();
const signal = () => AbortSignal.timeout(10_000);

test("an agent serving the job's commands answers with job-commands' greeting; the frames behind it stay on the channel", {
  timeout: 20_000,
}, async () => {
  // The greeting split across writes, and a frame right behind it in the same write.
  const agent = await fakeAgent(["SOLSTICE-COMM", "ANDS 1\nx\x00\x00\x00\x01"]);
  try {
    const channel = await deliverKeys({ socketPath: agent.path, keys, hostname: "a-guest", signal: signal() });
    assert.equal(channel?.kind, "commands");
    const sent = await agent.received;
    assert.match(sent, /^TIME \d+\nRESEED [0-9a-f]{64}\nNAME a-guest\nAUTH ssh-ed25519 \S+ solstice-client\n/);
    assert.match(sent, /\nCOMMANDS\nGO\n$/);
    assert.equal(await readAll(channel.socket, 5), "x\x00\x00\x00\x01");
    channel.socket.destroy();
  } finally {
    agent.server.close();
  }
});

test("an agent serving an SSH session answers with the SSH identification line, which stays on the channel for the client", {
  timeout: 20_000,
}, async () => {
  // The line split across writes, and SSH bytes right behind it in the same write.
  const agent = await fakeAgent(["SSH-2.0-drop", "bear_2022.83\r\n\x00\x00\x01\x0cKEXINIT..."]);
  try {
    const channel = await deliverKeys({
      socketPath: agent.path,
      keys,
      hostname: "a-guest",
      signal: signal(),
      channel: "ssh",
    });
    assert.equal(channel?.kind, "ssh");
    assert.match(await agent.received, /\nSESSION\nGO\n$/);
    const expected = "SSH-2.0-dropbear_2022.83\r\n\x00\x00\x01\x0cKEXINIT...";
    assert.equal(await readAll(channel.socket, expected.length), expected);
    channel.socket.destroy();
  } finally {
    agent.server.close();
  }
});

test("an agent that does not serve the channel answers READY: no channel, SSH on port 22 as before", {
  timeout: 20_000,
}, async () => {
  const agent = await fakeAgent(["solstice-guest: unknown item COMMANDS\n", "READY\n"]);
  try {
    assert.equal(await deliverKeys({ socketPath: agent.path, keys, hostname: "b", signal: signal() }), undefined);
  } finally {
    agent.server.close();
  }
});

test("FAILED is a boot failure that names the agent's reason; the channel can be left out", {
  timeout: 20_000,
}, async () => {
  const agent = await fakeAgent(["FAILED no-reseed \n"]);
  try {
    await assert.rejects(
      deliverKeys({ socketPath: agent.path, keys, hostname: "c", signal: signal(), channel: "none" }),
      (error: unknown) => error instanceof VmError && /refused to start SSH: FAILED no-reseed/.test(error.message),
    );
    assert.doesNotMatch(await agent.received, /SESSION|COMMANDS/);
    assert.doesNotMatch(agentMessage(keys, "c", { channel: "none" }), /SESSION|COMMANDS/);
  } finally {
    agent.server.close();
  }
});

test("an agent that hangs up before answering fails the boot instead of hanging it", { timeout: 20_000 }, async () => {
  const path = join(dir, "hangs-up.sock");
  const server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(path, resolve));
  try {
    await assert.rejects(
      deliverKeys({ socketPath: path, keys, hostname: "d", signal: signal() }),
      (error: unknown) => error instanceof VmError && /closed before it answered/.test(error.message),
    );
  } finally {
    server.close();
  }
});
