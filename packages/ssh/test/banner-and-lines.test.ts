import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { LineSplitter, MAX_LINE_BYTES, SshError, waitForSshBanner } from "@solstice/ssh";

test("waiting for a banner gives up at its deadline when nothing answers", { timeout: 10_000 }, async () => {
  const server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  const started = Date.now();
  await assert.rejects(waitForSshBanner("127.0.0.1", address.port, { deadlineMs: 500 }), (err) => {
    assert.ok(err instanceof SshError);
    assert.equal(err.code, "banner_timeout");
    return true;
  });
  assert.ok(Date.now() - started < 2_000);
  server.close();
});

test("waiting for a banner returns as soon as a server says SSH-", { timeout: 10_000 }, async () => {
  const server = createServer((socket) => socket.end("SSH-2.0-test\r\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address && typeof address === "object");
  await waitForSshBanner("127.0.0.1", address.port, { deadlineMs: 5_000 });
  server.close();
});

test("output is split into lines, an overlong line in bounded pieces, a partial last line on flush", () => {
  const lines: string[] = [];
  const splitter = new LineSplitter((line) => lines.push(line));
  splitter.push(Buffer.from("a\r\nb"));
  splitter.push(Buffer.from("c\n"));
  splitter.push(Buffer.alloc(MAX_LINE_BYTES + 10, "x"));
  splitter.push(Buffer.from("\ntail"));
  splitter.flush();
  assert.deepEqual(
    lines.map((l) => (l.length > 20 ? `x*${l.length}` : l)),
    ["a", "bc", `x*${MAX_LINE_BYTES}`, "xxxxxxxxxx", "tail"],
  );
});

test("an overlong line's pieces are marked continued and never cut inside a UTF-8 character", () => {
  const pieces: Array<[string, boolean]> = [];
  const splitter = new LineSplitter((line, continued) => pieces.push([line, continued]));
  // "é" is two bytes; starting at an odd offset puts a character across every 64 KiB boundary.
  const text = `a${"é".repeat(MAX_LINE_BYTES)}`;
  splitter.push(Buffer.from(`${text}\nnext\n`));
  assert.ok(pieces.length >= 3);
  assert.deepEqual(
    pieces.map(([, c]) => c),
    [...pieces.slice(0, -2).map(() => true), false, false],
  );
  assert.ok(pieces.every(([line]) => !line.includes("\uFFFD")));
  assert.equal(
    pieces
      .slice(0, -1)
      .map(([l]) => l)
      .join(""),
    text,
  );
});
