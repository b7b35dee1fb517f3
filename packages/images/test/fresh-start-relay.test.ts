import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

// fresh-start's relay (recipes/fresh-start.c) between the key agent's virtio-serial port and
// `dropbear -i`, run on this host: the test holds the "port" (one end of a socketpair handed to it
// as fd 3, which is what the relay polls and reads the same way) and the server is a shell that
// writes 4 MiB before it reads any of its input, while the test writes 4 MiB at the same time —
// bulk both ways, as a job's upload beside a step's output is. A relay that blocks on one
// direction's write stops reading the other and both sides wait for good. The ioctls fresh-start
// makes before it relays need root, as in the guest; this suite runs as root.
const SOURCE = fileURLToPath(new URL("../recipes/fresh-start.c", import.meta.url));
const BYTES = 4 * 1024 * 1024;
const SEED = "0123456789abcdef0123456789abcdef";

test("fresh-start's relay carries bulk both ways at once when the server reads its input only after writing (no deadlock)", {
  timeout: 60_000,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "solstice-fresh-start-"));
  let child: ChildProcess | undefined;
  try {
    const binary = join(dir, "fresh-start");
    await promisify(execFile)("gcc", ["-O2", "-Wall", "-Werror", "-o", binary, SOURCE]);
    const server = `head -c ${BYTES} /dev/zero; head -c ${BYTES} | wc -c`;
    const relay = spawn(binary, [SEED, "0", "--relay", "3", "sh", "-c", server], {
      stdio: ["ignore", "ignore", "pipe", "pipe"],
    });
    child = relay;
    const port = relay.stdio[3] as Duplex;
    let stderr = "";
    relay.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const received: Buffer[] = [];
    port.on("data", (chunk: Buffer) => received.push(chunk));
    const exited = new Promise<number | null>((resolve) => relay.on("exit", (code) => resolve(code)));
    port.write(Buffer.alloc(BYTES, 0x61));

    const code = await exited;
    assert.equal(code, 0, `fresh-start exited ${code}: ${stderr}`);
    const all = Buffer.concat(received);
    assert.equal(all.length, BYTES + `${BYTES}\n`.length, "the server's 4 MiB and its count of what it read");
    assert.ok(all.subarray(0, BYTES).equals(Buffer.alloc(BYTES, 0)), "the server's output arrived whole");
    assert.equal(all.subarray(BYTES).toString().trim(), String(BYTES), "the server read all 4 MiB the port sent");
    port.destroy();
  } finally {
    child?.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});
