import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { ForgeKeysError, fetchForgeUserKeys, generateJobKeys, isPublicKeyLine, MAX_FORGE_KEYS } from "../src/index.ts";

const alice = [generateJobKeys().client.publicKey, generateJobKeys().client.publicKey];
const many = Array.from({ length: MAX_FORGE_KEYS + 5 }, () => generateJobKeys().client.publicKey);

/**
 * A local stand-in for both forges, answering as they document it: GitHub's `/<user>.keys` is
 * text with one key per line; Forgejo/Gitea's `/api/v1/users/<user>/keys` is a JSON list of key
 * objects (id, key, title, fingerprint, …). Unknown users are a 404 on both.
 */
function forge(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://forge");
  seen.push(`${url.pathname}${url.search}`);
  const { status, body, type } = answer(url.pathname);
  res.writeHead(status, { "content-type": type });
  res.end(body);
}

function answer(path: string): { status: number; body: string; type: string } {
  const text = (body: string, status = 200) => ({ status, body, type: "text/plain" });
  const json = (body: unknown) => ({ status: 200, body: JSON.stringify(body), type: "application/json" });
  switch (path) {
    case "/alice.keys":
      return text(`${alice.join("\n")}\n`);
    case "/mallory.keys":
      // Not keys: an options prefix, a private key, a quote that could break out of a shell string.
      return text(
        [
          `command="curl evil" ${alice[0]}`,
          "-----BEGIN OPENSSH PRIVATE KEY-----",
          `${alice[1]} it's me`,
          "ssh-ed25519 AAAAnotbase64!!",
          "",
        ].join("\n"),
      );
    case "/many.keys":
      return text(many.join("\n"));
    case "/huge.keys":
      return text("x".repeat(512 * 1024));
    case "/broken.keys":
      return text("oops", 500);
    case "/api/v1/users/alice/keys":
      return json(alice.map((key, i) => ({ id: i + 1, key, title: `laptop ${i}`, fingerprint: "SHA256:…" })));
    case "/sub/api/v1/users/alice/keys":
      return json([{ id: 1, key: alice[0] }]);
    case "/api/v1/users/weird/keys":
      return json({ message: "not a list" });
    default:
      return text("Not Found", 404);
  }
}

let server: Server;
let base = "";
const seen: string[] = [];
before(async () => {
  server = createServer(forge);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("fetchForgeUserKeys", () => {
  test("reads a GitHub user's keys from <host>/<user>.keys", async () => {
    assert.deepEqual(await fetchForgeUserKeys({ forge: "github", baseUrl: base, username: "alice" }), alice);
    assert.ok(seen.includes("/alice.keys"));
  });

  test("reads a Forgejo or Gitea user's keys from /api/v1/users/<user>/keys, under a sub-path too", async () => {
    for (const kind of ["forgejo", "gitea"] as const) {
      assert.deepEqual(await fetchForgeUserKeys({ forge: kind, baseUrl: base, username: "alice" }), alice);
    }
    assert.ok(seen.includes("/api/v1/users/alice/keys?limit=50"), "asks for a full page");
    assert.deepEqual(await fetchForgeUserKeys({ forge: "forgejo", baseUrl: `${base}/sub`, username: "alice" }), [
      alice[0],
    ]);
  });

  test("an unknown user and a bot account have no keys", async () => {
    assert.deepEqual(await fetchForgeUserKeys({ forge: "github", baseUrl: base, username: "nobody" }), []);
    assert.deepEqual(await fetchForgeUserKeys({ forge: "forgejo", baseUrl: base, username: "nobody" }), []);
    const before = seen.length;
    assert.deepEqual(await fetchForgeUserKeys({ forge: "github", baseUrl: base, username: "renovate[bot]" }), []);
    assert.equal(seen.length, before, "a bot is not looked up");
  });

  test("keeps only well-formed public key lines, and at most MAX_FORGE_KEYS of them", async () => {
    assert.deepEqual(await fetchForgeUserKeys({ forge: "github", baseUrl: base, username: "mallory" }), []);
    const kept = await fetchForgeUserKeys({ forge: "github", baseUrl: base, username: "many" });
    assert.equal(kept.length, MAX_FORGE_KEYS);
    assert.ok(kept.every(isPublicKeyLine));
  });

  test("refuses a user name that could change the URL, before any request", async () => {
    const before = seen.length;
    for (const username of ["../admin", "a/b", "alice?x=1", "", "-alice", "a b"]) {
      await assert.rejects(
        fetchForgeUserKeys({ forge: "forgejo", baseUrl: base, username }),
        (error: unknown) => error instanceof ForgeKeysError && error.code === "bad_request",
        username,
      );
    }
    assert.equal(seen.length, before);
  });

  test("fails with a typed error on a server error, a body that is not a key list, or an oversized body", async () => {
    const code = (promise: Promise<unknown>) =>
      promise.then(
        () => "resolved",
        (error: unknown) => (error instanceof ForgeKeysError ? error.code : String(error)),
      );
    assert.equal(await code(fetchForgeUserKeys({ forge: "github", baseUrl: base, username: "broken" })), "http_error");
    assert.equal(await code(fetchForgeUserKeys({ forge: "gitea", baseUrl: base, username: "weird" })), "bad_response");
    assert.equal(await code(fetchForgeUserKeys({ forge: "github", baseUrl: base, username: "huge" })), "bad_response");
    assert.equal(
      await code(fetchForgeUserKeys({ forge: "github", baseUrl: "http://127.0.0.1:1", username: "alice" })),
      "unreachable",
    );
  });

  test("gives up at its deadline when the forge does not answer", async () => {
    const silent = createServer(() => {
      // Never answers.
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const started = Date.now();
      await assert.rejects(
        fetchForgeUserKeys({
          forge: "github",
          baseUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
          username: "alice",
          timeoutMs: 300,
        }),
        (error: unknown) => error instanceof ForgeKeysError && error.code === "unreachable",
      );
      assert.ok(Date.now() - started < 5_000);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
