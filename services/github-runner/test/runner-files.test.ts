import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import {
  decodeJitConfig,
  expandRoute,
  fromRsaParams,
  generateRunnerKey,
  negotiateVersion,
  parseGitHubUrl,
  publicKeyParts,
  publicKeyXml,
  toRsaParams,
} from "../src/index.ts";

test("GitHub REST is api.<host> for github.com and GHE.com, {host}/api/v3 elsewhere, as the official runner decides", () => {
  assert.deepEqual(parseGitHubUrl("https://github.com/acme/app/", {}), {
    url: "https://github.com/acme/app",
    api: "https://api.github.com",
    kind: "repository",
    path: "repos/acme/app",
  });
  assert.equal(parseGitHubUrl("https://github.com/acme", {}).path, "orgs/acme");
  assert.equal(parseGitHubUrl("https://github.com/enterprises/big", {}).path, "enterprises/big");
  assert.equal(parseGitHubUrl("https://octo.ghe.com/acme", {}).api, "https://api.octo.ghe.com");
  assert.equal(parseGitHubUrl("https://ghes.example.com/acme/app", {}).api, "https://ghes.example.com/api/v3");
  assert.equal(
    parseGitHubUrl("https://github.com/acme/app", { GITHUB_ACTIONS_RUNNER_FORCE_GHES: "1" }).api,
    "https://github.com/api/v3",
  );
  assert.throws(() => parseGitHubUrl("https://github.com/a/b/c", {}), /names no repository/);
});

test("the RSA key round-trips through .credentials_rsaparams, and its public half is the unsigned big-endian modulus", () => {
  const key = generateRunnerKey();
  const params = toRsaParams(key);
  const again = fromRsaParams(params, "x");
  assert.deepEqual(toRsaParams(again), params);
  const pascal = Object.fromEntries(
    Object.entries(params).map(([k, v]) => [k.charAt(0).toUpperCase() + k.slice(1), v]),
  );
  assert.deepEqual(toRsaParams(fromRsaParams(pascal, "x")), params, "PascalCase keys (JIT files) read the same");
  const { exponent, modulus } = publicKeyParts(key);
  assert.equal(exponent, "AQAB");
  assert.equal(Buffer.from(modulus, "base64").length, 256, "2048 bits, no leading zero byte");
  assert.equal(publicKeyXml(key), `<RSAKeyValue><Modulus>${modulus}</Modulus><Exponent>AQAB</Exponent></RSAKeyValue>`);
});

test("a JIT config's files are read tolerantly: PascalCase, numbers and booleans as strings (fixture)", async () => {
  const runnerFile = JSON.parse(
    await readFile(path.join(import.meta.dirname, "../../../test/fakes/github/fixtures/jit-runner-file.json"), "utf8"),
  );
  const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
  const b64 = (v: string | undefined) => Buffer.from(v ?? "", "base64url").toString("base64");
  const files = {
    ".runner": runnerFile,
    ".credentials": {
      Scheme: "OAuth",
      Data: { ClientId: "c1", AuthorizationUrl: "https://token.example/", RequireFipsCryptography: "True" },
    },
    ".credentials_rsaparams": {
      D: b64(jwk.d),
      DP: b64(jwk.dp),
      DQ: b64(jwk.dq),
      Exponent: b64(jwk.e),
      InverseQ: b64(jwk.qi),
      Modulus: b64(jwk.n),
      P: b64(jwk.p),
      Q: b64(jwk.q),
    },
  };
  const encoded = Buffer.from(
    JSON.stringify(
      Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(JSON.stringify(v)).toString("base64")])),
    ),
  ).toString("base64");
  const reg = decodeJitConfig(encoded, ["omnios:vm:omnios-r151054"]);
  assert.equal(reg.settings.agentId, 23);
  assert.equal(reg.settings.poolId, 1);
  assert.equal(reg.settings.useV2Flow, true);
  assert.equal(reg.settings.serverUrlV2, "https://broker.example/");
  assert.equal(reg.settings.disableUpdate, true);
  assert.equal(reg.settings.ephemeral, true);
  assert.deepEqual(reg.credentials, {
    clientId: "c1",
    authorizationUrl: "https://token.example/",
    requireFipsCryptography: true,
  });
  assert.throws(() => decodeJitConfig("bm90IGpzb24=", []), /not base64 of a JSON object/);
});

test("routes come from connectionData: placeholders filled, unfilled ones dropped with their slash; api-version negotiated down", () => {
  assert.equal(
    expandRoute("/_apis/distributedtask/pools/{poolId}/agents/{agentId}", { poolId: 1 }),
    "_apis/distributedtask/pools/1/agents",
  );
  assert.equal(
    expandRoute("{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/logs/{logId}", {
      scopeIdentifier: "s",
      hubName: "actions",
      planId: "p",
    }),
    "s/_apis/distributedtask/hubs/actions/plans/p/logs",
  );
  assert.equal(
    negotiateVersion("6.0-preview.2", { minVersion: 1, maxVersion: 7.1, releasedVersion: 0 }),
    "6.0-preview.2",
  );
  assert.equal(
    negotiateVersion("6.0-preview.1", { minVersion: 1, maxVersion: 5.1, releasedVersion: 0 }),
    "5.1-preview",
  );
  assert.equal(negotiateVersion("6.0-preview.1", { minVersion: 1, maxVersion: 5.1, releasedVersion: 5.1 }), "5.1");
  assert.throws(
    () => negotiateVersion("5.1-preview.1", { minVersion: 6, maxVersion: 7, releasedVersion: 0 }),
    /api-version 6/,
  );
});
