import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import {
  ActionsRuntimeSchema,
  create,
  FleetKeyring,
  generateFleetKey,
  JobRequestSchema,
  parseFleetKeys,
  runtimeTokenContext,
} from "@solstice/protocol";
import { unsealActionsRuntime } from "../src/actions/actions-runtime.ts";
import { MASK, SecretMasker } from "../src/index.ts";

const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("runtime")));
const TOKEN = "eyJhbGciOiJIUzI1NiJ9.runtime-token-canary.sig";

function job(runtime: Parameters<typeof create<typeof ActionsRuntimeSchema>>[1], sealToken = true) {
  const jobId = randomUUID();
  return create(JobRequestSchema, {
    jobId,
    actionsRuntime: create(ActionsRuntimeSchema, {
      ...runtime,
      ...(sealToken ? { token: keyring.seal(TOKEN, runtimeTokenContext(jobId)) } : {}),
    }),
  });
}

test("actions get GitHub's runtime variables; run: steps only the OIDC pair; the token is masked", () => {
  const masker = new SecretMasker();
  const env = unsealActionsRuntime(
    job({
      runtimeUrl: "https://pipelines.example/abc/",
      resultsUrl: "https://results.example/",
      cacheUrl: "https://cache.example/abc/",
      cacheServiceV2: true,
      cacheMode: "read",
      idTokenRequestUrl: "https://oidc.example/token",
    }),
    keyring,
    masker,
  );
  assert.deepEqual(env.action, {
    ACTIONS_RUNTIME_URL: "https://pipelines.example/abc/",
    ACTIONS_RUNTIME_TOKEN: TOKEN,
    ACTIONS_CACHE_URL: "https://cache.example/abc/",
    ACTIONS_RESULTS_URL: "https://results.example/",
    ACTIONS_CACHE_SERVICE_V2: "True",
    ACTIONS_CACHE_MODE: "read",
    ACTIONS_ID_TOKEN_REQUEST_URL: "https://oidc.example/token",
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: TOKEN,
  });
  assert.deepEqual(env.script, {
    ACTIONS_ID_TOKEN_REQUEST_URL: "https://oidc.example/token",
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: TOKEN,
  });
  assert.equal(masker.mask(`token ${TOKEN}`), `token ${MASK}`);
});

test("without OIDC a run: step gets nothing, and absent services set no variable", () => {
  const env = unsealActionsRuntime(
    job({ runtimeUrl: "https://forge.example/api/actions_pipeline/", resultsUrl: "https://forge.example" }),
    keyring,
    new SecretMasker(),
  );
  assert.deepEqual(env.script, {});
  assert.deepEqual(Object.keys(env.action).sort(), [
    "ACTIONS_RESULTS_URL",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_RUNTIME_URL",
  ]);
  assert.deepEqual(
    unsealActionsRuntime(create(JobRequestSchema, { jobId: randomUUID() }), keyring, new SecretMasker()),
    {
      action: {},
      script: {},
    },
  );
});

test("a sealed token without a fleet key fails the job saying which key to give; one sealed for another job fails", () => {
  assert.throws(
    () => unsealActionsRuntime(job({ resultsUrl: "https://r.example" }), undefined, new SecretMasker()),
    (error: Error) => {
      assert.match(error.message, /sealed actions runtime token, but this executor has no fleet key/);
      assert.doesNotMatch(error.message, /runtime-token-canary/);
      return true;
    },
  );
  const other = job({ resultsUrl: "https://r.example" });
  const moved = create(JobRequestSchema, { jobId: randomUUID(), actionsRuntime: other.actionsRuntime });
  assert.throws(() => unsealActionsRuntime(moved, keyring, new SecretMasker()));
});
