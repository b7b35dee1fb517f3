import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { FleetKeyring, generateFleetKey, parseFleetKeys, runtimeTokenContext, secretContext } from "@solstice/protocol";
import { contextDataToJson, JobMasker, parseJobMessage, planJob, readToken, secretsOf } from "../src/index.ts";

// The job message fixture (test/fakes/github/fixtures/job-message.json, shaped after the official
// runner's serializers; see its README) read by the client, without the fake in between.

const fixture = async () =>
  JSON.parse(
    await readFile(path.join(import.meta.dirname, "../../../test/fakes/github/fixtures/job-message.json"), "utf8"),
  ) as Record<string, unknown>;
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("plantest")));

test("a GitHub job message becomes a JobRequest: run scripts with run-time expressions, the built-in checkout, env, defaults, contexts and outputs", async () => {
  const message = parseJobMessage(await fixture());
  assert.equal(message.systemVss.token, "job-token-from-fixture");
  assert.equal(message.systemVss.feedStreamUrl, "wss://feed.example/stream");
  const plan = planJob(message, { owner: "github-17", fleetLabel: "omnios-r151054", keyring });
  assert.ok(plan.ok, plan.ok ? "" : plan.problems.join("\n"));
  const { request, steps } = plan;
  assert.equal(request.runsOn, "omnios-r151054");
  assert.equal(request.repository?.url, "https://github.com/acme/app.git");
  assert.equal(request.repository?.commitSha, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
  assert.deepEqual(
    steps.map((s) => [s.recordId, s.name]),
    [
      ["0a1b2c3d-0000-4000-8000-000000000001", "Run actions/checkout@v4"],
      ["0a1b2c3d-0000-4000-8000-000000000002", "Say hello"],
      ["0a1b2c3d-0000-4000-8000-000000000003", "Run make -j4"],
    ],
  );
  const [checkout, hello, make] = request.steps;
  assert.equal(checkout?.action.case, "checkout");
  assert.equal(checkout?.action.case === "checkout" ? checkout.action.value.fetchDepth : -1, 0);
  assert.equal(hello?.id, "hello");
  assert.equal(
    hello?.action.case === "run" ? hello.action.value.script : "",
    `\${{ format('echo text={0} >> "$GITHUB_OUTPUT"', vars.GREETING) }}`,
  );
  assert.equal(
    hello?.action.case === "run" ? hello.action.value.shell : "",
    "bash --noprofile --norc -eo pipefail {0}",
  );
  assert.deepEqual(hello?.env, { STEP_VAR: "one", CI: "true" });
  assert.equal(hello?.timeoutSeconds, 600);
  assert.equal(make?.workingDirectory, "src");
  assert.deepEqual(request.env, { CI: "true" });
  assert.deepEqual(request.secretEnv, { DEPLOY: "DEPLOY_KEY" });
  const sealed = request.secrets.find((s) => s.name === "DEPLOY_KEY")?.value;
  assert.ok(sealed);
  assert.equal(keyring.unseal(sealed, secretContext(request.jobId, "DEPLOY_KEY")), "fixture-secret-value");
  assert.ok(request.checkoutToken, "the job's token travels sealed, for the checkout");
  assert.deepEqual(request.outputs, { greeting: `\${{ steps.hello.outputs.text }}` });
  const github = JSON.parse(request.contexts?.githubJson ?? "{}");
  assert.equal(github.repository, "acme/app");
  assert.equal(github.token, undefined, "the token is not in the plain github context");
  assert.deepEqual(github.event, { commits: [{ id: "4b825dc" }] });
  assert.deepEqual(JSON.parse(request.contexts?.matrixJson ?? "{}"), { os: "omnios" });
  assert.deepEqual(JSON.parse(request.contexts?.varsJson ?? "{}"), { GREETING: "hello" });
  assert.doesNotMatch(
    JSON.stringify(request, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
    /fixture-secret-value|ghs_fixture/,
  );
});

test("what Solstice cannot run is every problem listed, with the step it is in", async () => {
  const json = await fixture();
  const steps = json.steps as Record<string, unknown>[];
  steps.push(
    {
      type: "action",
      id: "x1",
      displayName: "Setup",
      reference: { type: "repository", name: "actions/github-script", ref: "v7", repositoryType: "GitHub" },
    },
    { type: "action", id: "x2", reference: { type: "containerRegistry", image: "alpine:3" } },
    {
      type: "action",
      id: "x3",
      reference: { type: "repository", name: "actions/checkout", ref: "v4", repositoryType: "GitHub" },
      inputs: { type: 2, map: [{ key: "ref", value: { type: 3, expr: "secrets.DEPLOY_KEY" } }] },
    },
  );
  json.jobContainer = { type: 2, map: [{ key: "image", value: "node:20" }] };
  const plan = planJob(parseJobMessage(json), { owner: "o", fleetLabel: "tiny", keyring });
  assert.equal(plan.ok, false);
  const text = plan.ok ? "" : plan.problems.join("\n");
  assert.match(text, /^container: job containers are not supported/m);
  assert.match(text, /steps\[3\] \(Setup\)\.uses: action actions\/github-script@v7 is not supported/);
  assert.match(text, /steps\[4\] \(Run docker:\/\/alpine:3\)\.uses: action docker:\/\/alpine:3 is not supported/);
  assert.match(text, /steps\[5\].*\.with\.ref: secrets cannot be read here/);
  assert.equal(plan.steps.length, 6, "every step still gets its timeline record");
});

test("a secret read in a script travels sealed, for the executor to substitute and mask", async () => {
  const json = await fixture();
  (json.steps as Record<string, unknown>[]).push({
    type: "action",
    id: "x3",
    reference: { type: "script" },
    inputs: { type: 2, map: [{ key: "script", value: { type: 3, expr: "format('echo {0}', secrets.DEPLOY_KEY)" } }] },
  });
  const plan = planJob(parseJobMessage(json), { owner: "o", fleetLabel: "tiny", keyring });
  assert.ok(plan.ok, plan.ok ? "" : plan.problems.join("\n"));
  const step = plan.request.steps[3];
  assert.equal(
    step?.action.case === "run" ? step.action.value.script : "",
    `\${{ format('echo {0}', secrets.DEPLOY_KEY) }}`,
  );
  assert.deepEqual(
    plan.request.secrets.map((s) => s.name),
    ["DEPLOY_KEY"],
  );
});

test("a repository action is planned with its inputs, a secret input sealed, fetched from the forge's URL", async () => {
  const json = await fixture();
  (json.steps as Record<string, unknown>[]).push({
    type: "action",
    id: "x1",
    displayName: "Setup",
    reference: { type: "repository", name: "actions/setup-node", ref: "v4", repositoryType: "GitHub" },
    inputs: {
      type: 2,
      map: [
        { key: "node-version", value: "20" },
        { key: "token", value: { type: 3, expr: "secrets.NPM_TOKEN" } },
      ],
    },
  });
  const plan = planJob(parseJobMessage(json), { owner: "o", fleetLabel: "tiny", keyring });
  assert.equal(plan.ok, true, plan.ok ? "" : plan.problems.join("\n"));
  if (!plan.ok) return;
  const step = plan.request.steps.at(-1);
  assert.equal(step?.action.case, "uses");
  if (step?.action.case !== "uses") return;
  assert.equal(step.action.value.uses, "actions/setup-node@v4");
  assert.deepEqual(step.action.value.inputs, { "node-version": "20" });
  assert.deepEqual(step.action.value.secretInputs, { token: "NPM_TOKEN" });
  assert.equal(plan.request.actionsUrl, "https://github.com");
  assert.deepEqual(
    plan.actions,
    [{ nameWithOwner: "actions/setup-node", ref: "v4", path: "" }],
    "the action goes to GitHub's action download info before the job runs",
  );
  assert.ok(
    plan.request.secrets.some((s) => s.name === "NPM_TOKEN"),
    "the secret travels sealed",
  );
});

test("a job that reads a secret needs the fleet key, and says so", async () => {
  const plan = planJob(parseJobMessage(await fixture()), { owner: "o", fleetLabel: "tiny" });
  assert.equal(plan.ok, false);
  assert.match(plan.ok ? "" : plan.problems.join(), /SOLSTICE_FLEET_KEYS_FILE/);
});

test("the secrets context is every secret variable but the runner's own tokens, plus GITHUB_TOKEN; masking covers them and the mask hints", async () => {
  const message = parseJobMessage(await fixture());
  assert.deepEqual(secretsOf(message), {
    DEPLOY_KEY: "fixture-secret-value",
    GITHUB_TOKEN: "ghs_fixturetoken000000000000000000000",
  });
  const masker = new JobMasker(["fixture-secret-value"], ["f[a-z]+ture-[0-9]+"]);
  assert.equal(
    masker.mask("a fixture-secret-value and fixture-42 and Zml4dHVyZS1zZWNyZXQtdmFsdWU="),
    "a *** and *** and ***",
  );
});

test("TemplateTokens and PipelineContextData read as the official converters write them", () => {
  assert.deepEqual(readToken("plain"), { kind: "literal", text: "plain" });
  assert.deepEqual(readToken({ type: 0, file: 1, line: 2, col: 3, lit: "with position" }), {
    kind: "literal",
    text: "with position",
  });
  assert.deepEqual(readToken({ lit: "no type is a string" }), { kind: "literal", text: "no type is a string" });
  assert.deepEqual(readToken({ type: 3, expr: "github.sha" }), { kind: "expression", expression: "github.sha" });
  assert.deepEqual(readToken({ type: 5, bool: true }), { kind: "literal", text: "true" });
  assert.deepEqual(readToken({ type: 6, num: 5 }), { kind: "literal", text: "5" });
  assert.deepEqual(readToken(null), { kind: "literal", text: "" });
  assert.equal(readToken({ type: 4, directive: "insert" }).kind, "other");
  assert.deepEqual(
    contextDataToJson({
      t: 2,
      d: [
        { k: "a", v: { t: 1, a: ["x", 1, true, { t: 5, d: [{ k: "B", v: null }] }] } },
        { k: "s", v: { t: 0, s: "typed" } },
      ],
    }),
    { a: ["x", 1, true, { B: null }], s: "typed" },
  );
  assert.deepEqual(contextDataToJson({ t: 2 }), {});
});

test("the job's runtime services travel as GitHub's runner gives them to actions, the access token sealed", async () => {
  const json = await fixture();
  const plain = planJob(parseJobMessage(json), { owner: "o", fleetLabel: "tiny", keyring });
  assert.ok(plain.ok);
  assert.equal(plain.request.actionsRuntime?.cacheServiceV2, false, "v1 unless the variable says v2");
  const endpoint = (json.resources as { endpoints: Record<string, unknown>[] }).endpoints[0] as Record<string, unknown>;
  endpoint.data = {
    ...(endpoint.data as object),
    PipelinesServiceUrl: "https://pipelines.example/",
    GenerateIdTokenUrl: "https://oidc.example/",
  };
  (json.variables as Record<string, unknown>).actions_uses_cache_service_v2 = { value: "True", isSecret: false };
  (json.variables as Record<string, unknown>).actions_cache_mode = { value: "read", isSecret: false };
  const plan = planJob(parseJobMessage(json), { owner: "o", fleetLabel: "tiny", keyring });
  assert.ok(plan.ok, plan.ok ? "" : plan.problems.join("\n"));
  const runtime = plan.request.actionsRuntime;
  assert.ok(runtime?.token);
  assert.deepEqual(
    {
      runtimeUrl: runtime.runtimeUrl,
      resultsUrl: runtime.resultsUrl,
      cacheUrl: runtime.cacheUrl,
      idTokenRequestUrl: runtime.idTokenRequestUrl,
      cacheServiceV2: runtime.cacheServiceV2,
      cacheMode: runtime.cacheMode,
    },
    {
      runtimeUrl: "https://pipelines.example/",
      resultsUrl: "https://results.example/",
      cacheUrl: "https://cache.example/",
      idTokenRequestUrl: "https://oidc.example/",
      cacheServiceV2: true,
      cacheMode: "read",
    },
  );
  assert.equal(keyring.unseal(runtime.token, runtimeTokenContext(plan.request.jobId)), "job-token-from-fixture");
  assert.doesNotMatch(
    JSON.stringify(plan.request, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
    /job-token-from-fixture/,
  );
});

test("actions/upload-artifact, download-artifact and cache are planned on GitHub, which hosts their services", async () => {
  const json = await fixture();
  (json.steps as Record<string, unknown>[]).push(
    ...["actions/upload-artifact", "actions/download-artifact", "actions/cache"].map((name, i) => ({
      type: "action",
      id: `a${i}`,
      reference: { type: "repository", name, ref: "v4", repositoryType: "GitHub" },
    })),
  );
  const plan = planJob(parseJobMessage(json), { owner: "o", fleetLabel: "tiny", keyring });
  assert.ok(plan.ok, plan.ok ? "" : plan.problems.join("\n"));
});
