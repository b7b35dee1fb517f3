import assert from "node:assert/strict";
import {
  constants,
  createDecipheriv,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
  randomUUID,
  sign,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type FakeGitHub, startFakeGitHub } from "./fake-github.ts";

// The fake against ../../../../shared/protocols/github-runner.md, spoken to with plain HTTP and
// node:crypto only (never the client's code), and fed the wire fixtures of ./fixtures.

const fixture = async (name: string) =>
  JSON.parse(await readFile(path.join(import.meta.dirname, "fixtures", name), "utf8")) as Record<string, unknown>;

const PIPELINES = { Accept: "application/json;api-version=6.0-preview.2", "Content-Type": "application/json" };

async function call(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown; form?: string } = {},
) {
  const res = await fetch(url, {
    method: init.method ?? (init.body !== undefined || init.form !== undefined ? "POST" : "GET"),
    headers: {
      ...(init.form !== undefined ? { "Content-Type": "application/x-www-form-urlencoded" } : {}),
      ...init.headers,
    },
    ...(init.form !== undefined
      ? { body: init.form }
      : init.body !== undefined
        ? { body: JSON.stringify(init.body) }
        : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

function jwt(header: object, claims: object, key: KeyObject, pss = false): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const data = `${enc(header)}.${enc(claims)}`;
  const sig = sign(
    "sha256",
    Buffer.from(data),
    pss ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : key,
  );
  return `${data}.${sig.toString("base64url")}`;
}

describe("fake GitHub", { timeout: 60_000 }, () => {
  let gh: FakeGitHub;
  const repo = () => `${gh.url}/acme/app`;

  before(async () => {
    gh = await startFakeGitHub({ pollHoldMs: 300, lockMs: 400 });
  });
  after(() => gh.close());

  /** §1.3 + §1.4 d: a classic agent with a fresh key; returns what a runner keeps. */
  async function registerAgent(name = `agent-${randomUUID().slice(0, 6)}`) {
    const token = gh.addRegistrationToken(repo());
    const reg = await call(`${gh.url}/api/v3/actions/runner-registration`, {
      headers: { Authorization: `RemoteAuth ${token}` },
      body: { url: repo(), runner_event: "register" },
    });
    assert.equal(reg.status, 200);
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = publicKey.export({ format: "jwk" });
    const tenant = String(reg.json?.url);
    const agent = await call(`${tenant}_apis/distributedtask/pools/1/agents`, {
      headers: { ...PIPELINES, Authorization: `Bearer ${reg.json?.token}` },
      body: {
        name,
        version: "2.336.0",
        labels: [
          { name: "self-hosted", type: "system" },
          { name: "omnios", type: "user" },
        ],
        authorization: {
          publicKey: {
            exponent: Buffer.from(jwk.e ?? "", "base64url").toString("base64"),
            modulus: Buffer.from(jwk.n ?? "", "base64url").toString("base64"),
          },
        },
      },
    });
    assert.equal(agent.status, 200, JSON.stringify(agent.json));
    const auth = agent.json?.authorization as { authorizationUrl: string; clientId: string };
    return { tenant, privateKey, id: Number(agent.json?.id), ...auth };
  }

  async function accessToken(agent: Awaited<ReturnType<typeof registerAgent>>) {
    const now = Math.floor(Date.now() / 1000);
    const assertion = jwt(
      { alg: "RS256", typ: "JWT" },
      {
        sub: agent.clientId,
        iss: agent.clientId,
        aud: agent.authorizationUrl,
        jti: randomUUID(),
        nbf: now,
        exp: now + 300,
      },
      agent.privateKey,
    );
    const res = await call(agent.authorizationUrl, {
      form: new URLSearchParams({
        grant_type: "client_credentials",
        client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion: assertion,
      }).toString(),
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return String(res.json?.access_token);
  }

  test("a live registration token buys a tenant credential; a wrong, expired or other-scope token is 404 (§1.3)", async () => {
    const token = gh.addRegistrationToken(repo());
    const ok = await call(`${gh.url}/api/v3/actions/runner-registration`, {
      headers: { Authorization: `RemoteAuth ${token}` },
      body: { url: repo(), runner_event: "register" },
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.json?.token_schema, "OAuthAccessToken");
    assert.equal(ok.json?.use_v2_flow, false);
    const expired = gh.addRegistrationToken(repo(), { expiresInMs: -1 });
    for (const [auth, url] of [
      ["RemoteAuth AAWRONG", repo()],
      [`RemoteAuth ${expired}`, repo()],
      [`RemoteAuth ${token}`, `${gh.url}/acme/other`],
      [`Bearer ${token}`, repo()],
    ]) {
      const res = await call(`${gh.url}/api/v3/actions/runner-registration`, {
        headers: { Authorization: String(auth) },
        body: { url, runner_event: "register" },
      });
      assert.equal(res.status, 404, `${auth} for ${url}`);
    }
  });

  test("connectionData serves the canonical location table, and calls without api-version are refused (§1.4 a)", async () => {
    const res = await call(
      `${gh.url}/tenant/acme/_apis/connectionData?connectOptions=1&lastChangeId=-1&lastChangeId64=-1`,
    );
    const data = res.json?.locationServiceData as {
      serviceDefinitions: { identifier: string; relativePath: string }[];
    };
    const defs = data.serviceDefinitions;
    const table = Object.fromEntries(defs.map((d) => [d.identifier, d.relativePath]));
    assert.equal(
      table["e298ef32-5878-4cab-993c-043836571f42"],
      "_apis/distributedtask/pools/{poolId}/agents/{agentId}",
    );
    assert.equal(
      table["c3a054f6-7a8a-49c0-944e-3a8e5d7adfd7"],
      "_apis/distributedtask/pools/{poolId}/messages/{messageId}",
    );
    assert.equal(
      table["8893bc5b-35b2-4be7-83cb-99e683551db4"],
      "{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/timelines/{timelineId}/records",
    );
    assert.equal(table["27d7f831-88c1-4719-8ca1-6a061dad90eb"]?.endsWith("/plans/{planId}/actiondownloadinfo"), true);
    assert.equal(defs.length, 11);
    const agent = await registerAgent();
    const token = await accessToken(agent);
    const noVersion = await call(`${agent.tenant}_apis/distributedtask/pools`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(noVersion.status, 400);
  });

  test("the token endpoint takes RS256 and PS256 assertions of the registered key and refuses a wrong key, a stale one or another audience (§2)", async () => {
    const agent = await registerAgent();
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      sub: agent.clientId,
      iss: agent.clientId,
      aud: agent.authorizationUrl,
      jti: randomUUID(),
      nbf: now,
      exp: now + 300,
    };
    const form = (assertion: string) =>
      new URLSearchParams({
        grant_type: "client_credentials",
        client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion: assertion,
      }).toString();
    const ps = await call(agent.authorizationUrl, {
      form: form(jwt({ alg: "PS256", typ: "JWT" }, { ...claims, iat: now - 30 }, agent.privateKey, true)),
    });
    assert.equal(ps.status, 200);
    assert.equal(ps.json?.token_type, "bearer");
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const wrongKey = await call(agent.authorizationUrl, {
      form: form(jwt({ alg: "RS256", typ: "JWT" }, claims, other)),
    });
    assert.equal(wrongKey.status, 401);
    assert.equal(wrongKey.json?.error, "invalid_client");
    assert.match(String(wrongKey.json?.error_description), /signature/);
    const stale = await call(agent.authorizationUrl, {
      form: form(jwt({ alg: "RS256", typ: "JWT" }, { ...claims, nbf: now - 3600, exp: now - 1800 }, agent.privateKey)),
    });
    assert.match(String(stale.json?.error_description), /Current server time is/);
    const aud = await call(agent.authorizationUrl, {
      form: form(jwt({ alg: "RS256", typ: "JWT" }, { ...claims, aud: "https://elsewhere/" }, agent.privateKey)),
    });
    assert.equal(aud.status, 401);
    gh.deleteRunner(agent.id);
    const deleted = await call(agent.authorizationUrl, {
      form: form(jwt({ alg: "RS256", typ: "JWT" }, claims, agent.privateKey)),
    });
    assert.equal(deleted.status, 400);
    assert.equal(deleted.json?.error, "invalid_client");
  });

  test("one session per runner; an empty poll is held, then 204; an unknown session is TaskAgentSessionExpiredException (§3, §4.1)", async () => {
    const agent = await registerAgent();
    const auth = { ...PIPELINES, Authorization: `Bearer ${await accessToken(agent)}` };
    const body = {
      sessionId: "00000000-0000-0000-0000-000000000000",
      ownerName: "test",
      agent: { id: agent.id, name: "x" },
    };
    const session = await call(`${agent.tenant}_apis/distributedtask/pools/1/sessions`, { headers: auth, body });
    assert.equal(session.status, 200);
    const conflict = await call(`${agent.tenant}_apis/distributedtask/pools/1/sessions`, { headers: auth, body });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.json?.typeKey, "TaskAgentSessionConflictException");
    const started = Date.now();
    const empty = await call(
      `${agent.tenant}_apis/distributedtask/pools/1/messages?sessionId=${session.json?.sessionId}&status=Online`,
      { headers: auth },
    );
    assert.equal(empty.status, 204);
    assert.ok(Date.now() - started >= 250, "the poll was held");
    const unknown = await call(
      `${agent.tenant}_apis/distributedtask/pools/1/messages?sessionId=${randomUUID()}&status=Online`,
      { headers: auth },
    );
    assert.equal(unknown.status, 403);
    assert.equal(unknown.json?.typeKey, "TaskAgentSessionExpiredException");
    const noToken = await call(`${agent.tenant}_apis/distributedtask/pools/1/messages?sessionId=x`, {
      headers: PIPELINES,
    });
    assert.equal(noToken.status, 401);
  });

  test("action download info: Launch (snake_case) and the plan API (camelCase) resolve owner/name@ref to a commit, tarball URL and a token; the tarball is served only to that token (actions/runner ActionManager, LaunchHttpClient)", async () => {
    const agent = await registerAgent();
    const sha = await gh.publishAction("acme/greet", { "action.yml": "name: greet\n" }, ["v1"]);
    const job = gh.queueJob(agent.id, { steps: [{ uses: "acme/greet@v1" }] });
    const plan = job.message.plan as { scopeIdentifier: string };
    const bearer = { Authorization: `Bearer ${job.jobToken}`, "Content-Type": "application/json" };
    const launch = await call(`${gh.url}/actions/build/${job.planId}/jobs/${job.jobId}/runnerresolve/actions`, {
      headers: bearer,
      body: { actions: [{ action: "acme/greet", version: "v1", path: "" }] },
    });
    assert.equal(launch.status, 200, JSON.stringify(launch.json));
    const snake = (launch.json?.actions as Record<string, Record<string, unknown>> | undefined)?.["acme/greet@v1"];
    assert.equal(snake?.resolved_sha, sha);
    assert.equal(snake?.resolved_name, "acme/greet");
    assert.match(String(snake?.tar_url), new RegExp(`/api/v3/repos/acme/greet/tarball/${sha}$`));
    const token = String((snake?.authentication as Record<string, unknown> | undefined)?.token);
    const classic = await call(
      `${agent.tenant}${plan.scopeIdentifier}/_apis/distributedtask/hubs/actions/plans/${job.planId}/actiondownloadinfo?jobId=${job.jobId}&api-version=6.0-preview.1`,
      { headers: bearer, body: { actions: [{ nameWithOwner: "acme/greet", ref: "v1", path: "" }] } },
    );
    assert.equal(classic.status, 200, JSON.stringify(classic.json));
    const camel = (classic.json?.actions as Record<string, Record<string, unknown>> | undefined)?.["acme/greet@v1"];
    assert.equal(camel?.resolvedSha, sha);
    assert.equal(camel?.resolvedNameWithOwner, "acme/greet");
    assert.ok(String((camel?.authentication as Record<string, unknown> | undefined)?.token).startsWith("ghs_"));
    const unknown = await call(`${gh.url}/actions/build/${job.planId}/jobs/${job.jobId}/runnerresolve/actions`, {
      headers: bearer,
      body: { actions: [{ action: "acme/greet", version: "v9", path: "" }] },
    });
    assert.equal(unknown.status, 422);
    assert.match(JSON.stringify(unknown.json?.errors), /Unable to resolve action `acme\/greet@v9`/);
    const otherJob = await call(`${gh.url}/actions/build/${job.planId}/jobs/${randomUUID()}/runnerresolve/actions`, {
      headers: bearer,
      body: { actions: [] },
    });
    assert.equal(otherJob.status, 403, "a job's token resolves only its own job's actions");
    const basic = (t: string) => `Basic ${Buffer.from(`x-access-token:${t}`).toString("base64")}`;
    const tarball = await fetch(String(snake?.tar_url), { headers: { Authorization: basic(token) } });
    assert.equal(tarball.status, 200);
    assert.equal((await tarball.arrayBuffer()).byteLength > 0, true);
    assert.equal(gh.actionDownloads("acme/greet"), 1);
    for (const auth of [basic("ghs_not_issued"), `Bearer ${token}`, ""]) {
      const refused = await fetch(String(snake?.tar_url), { headers: auth ? { Authorization: auth } : {} });
      await refused.arrayBuffer();
      assert.equal(refused.status, 401, `refused with ${auth.split(" ")[0] || "no auth"}`);
    }
    assert.equal(gh.actionDownloads("acme/greet"), 1, "refused downloads are not counted");
  });

  test("broker jobs: acquired once, renewed, abandoned when the lock lapses, completed with the conclusion (§5)", async () => {
    const v2Token = gh.addRegistrationToken(repo(), { useV2Flow: true });
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = publicKey.export({ format: "jwk" });
    const xml = `<RSAKeyValue><Modulus>${Buffer.from(jwk.n ?? "", "base64url").toString("base64")}</Modulus><Exponent>AQAB</Exponent></RSAKeyValue>`;
    const made = await call(`${gh.url}/api/v3/actions/runners/register`, {
      headers: { Authorization: `RemoteAuth ${v2Token}` },
      body: { url: repo(), group_id: 1, name: "broker-one", version: "2.336.0", labels: [], public_key: xml },
    });
    assert.equal(made.status, 200);
    const a = made.json?.authorization as { authorization_url: string; client_id: string; server_url: string };
    const runner = {
      tenant: "",
      privateKey,
      id: Number(made.json?.id),
      authorizationUrl: a.authorization_url,
      clientId: a.client_id,
    };
    const auth = { Authorization: `Bearer ${await accessToken(runner)}`, "Content-Type": "application/json" };
    const session = await call(`${a.server_url}session`, { headers: auth, body: { agent: { id: runner.id } } });
    const job = gh.queueJob(runner.id, { steps: [{ run: "echo hi" }] });
    const message = await call(`${a.server_url}message?sessionId=${session.json?.sessionId}&status=Online`, {
      headers: auth,
    });
    assert.equal(message.json?.messageType, "RunnerJobRequest");
    const ref = JSON.parse(String(message.json?.body)) as { runner_request_id: string; run_service_url: string };
    const acquire = () =>
      call(`${ref.run_service_url}acquirejob`, {
        headers: auth,
        body: { jobMessageId: ref.runner_request_id, runnerOS: "Linux" },
      });
    const first = await acquire();
    assert.equal(first.json?.jobId, job.jobId);
    assert.equal((await acquire()).status, 409);
    const jobAuth = { Authorization: `Bearer ${job.jobToken}`, "Content-Type": "application/json" };
    const renewed = await call(`${ref.run_service_url}renewjob`, {
      headers: jobAuth,
      body: { planId: job.planId, jobId: job.jobId },
    });
    assert.ok(Date.parse(String(renewed.json?.lockedUntil)) > Date.now());
    const wrongJob = await call(`${ref.run_service_url}renewjob`, {
      headers: jobAuth,
      body: { planId: job.planId, jobId: randomUUID() },
    });
    assert.equal(wrongJob.status, 403);
    await new Promise((r) => setTimeout(r, 600));
    const lapsed = await call(`${ref.run_service_url}renewjob`, {
      headers: jobAuth,
      body: { planId: job.planId, jobId: job.jobId },
    });
    assert.equal(lapsed.status, 404);
    assert.equal(job.state, "abandoned");

    const second = gh.queueJob(runner.id, { steps: [{ run: "echo hi" }] });
    const m2 = await call(`${a.server_url}message?sessionId=${session.json?.sessionId}&status=Online`, {
      headers: auth,
    });
    const ref2 = JSON.parse(String(m2.json?.body)) as { runner_request_id: string };
    await call(`${ref.run_service_url}acquirejob`, { headers: auth, body: { jobMessageId: ref2.runner_request_id } });
    const go = await fixture("completejob-go.json");
    const done = await call(`${ref.run_service_url}completejob`, {
      headers: { Authorization: `Bearer ${second.jobToken}`, "Content-Type": "application/json" },
      body: { ...go, planId: second.planId, jobId: second.jobId },
    });
    assert.equal(done.status, 200);
    assert.equal(second.completion?.conclusion, "failed");
    assert.deepEqual(second.completion?.outputs, { greeting: "hello" });
    assert.equal(second.completion?.stepResults.length, 2);
  });

  test("timeline and Results bodies are read alike in Go's PascalCase, the official camelCase and numeric enums (fixtures)", async () => {
    const agent = await registerAgent();
    const job = gh.queueJob(agent.id, { steps: [{ run: "echo one" }, { run: "make" }] });
    const scope = String((job.message.plan as { scopeIdentifier: string }).scopeIdentifier);
    const records = `${gh.url}/tenant/acme/${scope}/_apis/distributedtask/hubs/actions/plans/${job.planId}/timelines/${job.timelineId}/records`;
    const auth = { ...PIPELINES, Authorization: `Bearer ${job.jobToken}` };
    assert.equal(
      (await call(records, { method: "PATCH", headers: auth, body: await fixture("timeline-records-go.json") })).status,
      200,
    );
    const hello = job.records.get("0a1b2c3d-0000-4000-8000-000000000002");
    const make = job.records.get("0a1b2c3d-0000-4000-8000-000000000003");
    assert.equal(hello?.state, "inProgress");
    assert.equal(make?.result, "failed");
    assert.equal(make?.logId, 7);
    await call(records, { method: "PATCH", headers: auth, body: await fixture("timeline-records-csharp.json") });
    assert.deepEqual(hello?.history, ["inProgress", "completed/succeeded"]);
    const update = await fixture("steps-update-csharp.json");
    const res = await call(
      `${gh.url}/results/twirp/github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate`,
      {
        headers: { Authorization: `Bearer ${job.jobToken}`, "Content-Type": "application/json" },
        body: { ...update, workflow_run_backend_id: job.planId, workflow_job_run_backend_id: job.jobId },
      },
    );
    assert.equal(res.status, 200);
    assert.equal(job.records.get("0a1b2c3d-0000-4000-8000-000000000003")?.state, "inProgress");
    assert.equal(hello?.result, "succeeded");
  });

  test("generate-jitconfig validates like GitHub and emits the official runner's three files, PascalCase with string values (§1.7)", async () => {
    gh.addPat("ghp_test");
    const url = `${gh.url}/api/v3/repos/acme/app/actions/runners/generate-jitconfig`;
    const auth = { Authorization: "Bearer ghp_test", "Content-Type": "application/json" };
    assert.equal((await call(url, { headers: auth, body: { name: "j", labels: ["omnios"] } })).status, 422);
    assert.equal((await call(url, { headers: auth, body: { name: "j", runner_group_id: 1, labels: [] } })).status, 422);
    assert.equal(
      (
        await call(url, {
          headers: { Authorization: "Bearer nope" },
          body: { name: "j", runner_group_id: 1, labels: ["x"] },
        })
      ).status,
      401,
    );
    const res = await call(url, { headers: auth, body: { name: "jit-1", runner_group_id: 1, labels: ["omnios"] } });
    assert.equal(res.status, 201);
    const files = JSON.parse(Buffer.from(String(res.json?.encoded_jit_config), "base64").toString()) as Record<
      string,
      string
    >;
    assert.deepEqual(Object.keys(files).sort(), [".credentials", ".credentials_rsaparams", ".runner"]);
    const runnerFile = JSON.parse(Buffer.from(files[".runner"] ?? "", "base64").toString()) as Record<string, unknown>;
    const shape = await fixture("jit-runner-file.json");
    assert.deepEqual(Object.keys(runnerFile).sort(), Object.keys(shape).sort());
    assert.equal(typeof runnerFile.AgentId, "string");
    assert.equal(runnerFile.UseV2Flow, "True");
    assert.equal(gh.runners.get(Number(runnerFile.AgentId))?.ephemeral, true);
  });

  test("with encryption on, a message decrypts with the session key sent RSA-OAEP-encrypted to the runner (§4.1)", async () => {
    const enc = await startFakeGitHub({ pollHoldMs: 200, encryptMessages: true });
    try {
      const token = enc.addRegistrationToken(`${enc.url}/acme/app`);
      const reg = await call(`${enc.url}/api/v3/actions/runner-registration`, {
        headers: { Authorization: `RemoteAuth ${token}` },
        body: { url: `${enc.url}/acme/app`, runner_event: "register" },
      });
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const jwk = publicKey.export({ format: "jwk" });
      const agent = await call(`${reg.json?.url}_apis/distributedtask/pools/1/agents`, {
        headers: { ...PIPELINES, Authorization: `Bearer ${reg.json?.token}` },
        body: {
          name: "enc",
          authorization: {
            publicKey: {
              exponent: Buffer.from(jwk.e ?? "", "base64url").toString("base64"),
              modulus: Buffer.from(jwk.n ?? "", "base64url").toString("base64"),
            },
          },
        },
      });
      const a = agent.json?.authorization as { authorizationUrl: string; clientId: string };
      const now = Math.floor(Date.now() / 1000);
      const tok = await call(a.authorizationUrl, {
        form: new URLSearchParams({
          grant_type: "client_credentials",
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: jwt(
            { alg: "RS256", typ: "JWT" },
            { sub: a.clientId, iss: a.clientId, aud: a.authorizationUrl, nbf: now, exp: now + 300 },
            privateKey,
          ),
        }).toString(),
      });
      const auth = { ...PIPELINES, Authorization: `Bearer ${tok.json?.access_token}` };
      const session = await call(`${reg.json?.url}_apis/distributedtask/pools/1/sessions`, {
        headers: auth,
        body: { agent: { id: agent.json?.id } },
      });
      const key = session.json?.encryptionKey as { encrypted: boolean; value: string };
      assert.equal(key.encrypted, true);
      const aes = privateDecrypt(
        { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
        Buffer.from(key.value, "base64"),
      );
      enc.sendMessage(Number(agent.json?.id), "JobCancellation", { jobId: "abc", timeout: "00:05:00" });
      const m = await call(
        `${reg.json?.url}_apis/distributedtask/pools/1/messages?sessionId=${session.json?.sessionId}&status=Busy`,
        { headers: auth },
      );
      const decipher = createDecipheriv("aes-256-cbc", aes, Buffer.from(String(m.json?.iV), "base64"));
      const plain = Buffer.concat([
        decipher.update(Buffer.from(String(m.json?.body), "base64")),
        decipher.final(),
      ]).toString("utf8");
      assert.deepEqual(JSON.parse(plain.replace(/^\uFEFF/, "")), { jobId: "abc", timeout: "00:05:00" });
    } finally {
      await enc.close();
    }
  });
});
