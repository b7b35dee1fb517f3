import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { create, JobRequestSchema, SCHEMA_VERSION } from "@solstice/protocol";
import { pino } from "pino";
import { addDebugAccess } from "../src/index.ts";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";
const log = pino({ level: "silent" });
let server: Server;
let serverUrl: string;
const asked: string[] = [];

before(async () => {
  // Forgejo's API: GET /api/v1/users/{username}/keys → [{ id, key, … }].
  server = createServer((req, res) => {
    asked.push(req.url ?? "");
    if (req.url?.startsWith("/api/v1/users/alice/keys")) {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify([{ id: 1, key: KEY, title: "laptop" }]));
    } else if (req.url?.startsWith("/api/v1/users/bob/keys")) {
      res.setHeader("content-type", "application/json");
      res.end("[]");
    } else {
      res.statusCode = 500;
      res.end("internal error");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const job = (actor: string, env: Record<string, string>) =>
  create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: "00000000-0000-4000-8000-000000000001",
    env,
    contexts: { githubJson: JSON.stringify({ actor, server_url: serverUrl }) },
  });

describe("addDebugAccess", () => {
  it("asks the forge nothing unless the job asks for debug SSH", async () => {
    const request = job("alice", {});
    const before = asked.length;
    assert.equal(await addDebugAccess(request, "forgejo", log), undefined);
    assert.equal(request.debugAccess, undefined);
    assert.equal(asked.length, before);
  });

  it("attaches the actor's public keys from the forge when the job asks for debug SSH", async () => {
    const request = job("alice", { SOLSTICE_DEBUG_SSH: "true" });
    assert.equal(await addDebugAccess(request, "forgejo", log), undefined);
    assert.equal(request.debugAccess?.user, "alice");
    assert.deepEqual(request.debugAccess?.publicKeys, [KEY]);
  });

  it("says so in a note when the actor has no keys or the forge cannot answer", async () => {
    const none = job("bob", { SOLSTICE_DEBUG_SSH: "true" });
    assert.match((await addDebugAccess(none, "forgejo", log)) ?? "", /bob has no public SSH keys on the forge/);
    const failing = job("carol", { SOLSTICE_DEBUG_SSH: "TRUE" });
    assert.match(
      (await addDebugAccess(failing, "forgejo", log)) ?? "",
      /carol's public keys could not be read from the forge .*only the operator's keys can log in/,
    );
    assert.equal(failing.debugAccess, undefined);
  });
});
