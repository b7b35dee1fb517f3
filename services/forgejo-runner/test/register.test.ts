import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { RegisterError, registerRunner } from "../src/register.ts";

test("register against a URL where no forge answers says what it waits for at once, and stops when interrupted", {
  timeout: 20_000,
}, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "solstice-register-"));
  try {
    // A port where nothing listens: bound, then closed.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
      });
    });
    const told: { text: string; at: number }[] = [];
    const interrupted = new AbortController();
    const started = Date.now();
    const registering = registerRunner({
      instance: `http://127.0.0.1:${port}`,
      token: "t",
      name: "r",
      labels: ["tiny"],
      file: path.join(dir, ".runner"),
      signal: interrupted.signal,
      onWaiting: (text) => told.push({ text, at: Date.now() - started }),
    });
    setTimeout(() => interrupted.abort(), 1_500);
    await assert.rejects(
      registering,
      (error: unknown) => error instanceof RegisterError && error.code === "forge_unreachable",
    );
    assert.ok(Date.now() - started < 3_500, `stopped ${Date.now() - started} ms after it began (Ctrl-C at 1.5 s)`);
    assert.equal(told.length, 1);
    assert.match(
      told[0]?.text ?? "",
      /waiting for http:\/\/127\.0\.0\.1:\d+ to answer the runner protocol .*up to 60 s, Ctrl-C stops/,
    );
    assert.ok((told[0]?.at ?? Infinity) < 1_000, "said at once");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
