import assert from "node:assert/strict";
import { test } from "node:test";
import {
  FleetKeyring,
  generateFleetKey,
  JobRequestSchema,
  JobSource,
  parseFleetKeys,
  secretContext,
  toBinary,
} from "@solstice/protocol";
import { parseWorkflow, toJobRequest, WorkflowError } from "../src/index.ts";

const WORKFLOW = `jobs:
  build:
    runs-on: tiny
    env:
      API_TOKEN: \${{ secrets.API_TOKEN }}
      PLAIN: visible
    steps:
      - run: echo "$API_TOKEN $DEPLOY_KEY"
        env:
          DEPLOY_KEY: \${{ secrets.DEPLOY_KEY }}
      - run: echo second
`;

const origin = {
  source: JobSource.MANUAL,
  owner: "test",
  repository: { url: "", fullName: "o/r", commitSha: "", ref: "" },
};

function plan() {
  const workflow = parseWorkflow(WORKFLOW, { file: "ci.yml" });
  const job = workflow.jobs[0];
  assert.ok(job);
  return { workflow, job };
}

test("secret env values become sealed secrets that unseal to their values and are absent from the message bytes", () => {
  const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("k1")));
  const { workflow, job } = plan();
  const values = { API_TOKEN: "canary-api-7781", DEPLOY_KEY: "canary-deploy-4412", UNUSED: "canary-unused-0001" };
  const request = toJobRequest(workflow, job, { ...origin, secrets: { values, keyring } });
  assert.deepEqual(
    request.secrets.map((s) => s.name),
    ["API_TOKEN", "DEPLOY_KEY"],
  );
  assert.equal(request.secretEnv.API_TOKEN, "API_TOKEN");
  assert.equal(request.env.PLAIN, "visible");
  assert.equal(request.env.API_TOKEN, undefined);
  assert.equal(request.steps[0]?.secretEnv.DEPLOY_KEY, "DEPLOY_KEY");
  for (const secret of request.secrets) {
    assert.ok(secret.value);
    assert.equal(
      keyring.unseal(secret.value, secretContext(request.jobId, secret.name)),
      values[secret.name as "API_TOKEN"],
    );
  }
  const bytes = Buffer.from(toBinary(JobRequestSchema, request)).toString("latin1");
  for (const value of Object.values(values)) assert.ok(!bytes.includes(value), `${value} is in the request bytes`);
});

test("planning a job that reads a secret without secrets and a fleet key is refused with the command to use", () => {
  const { workflow, job } = plan();
  assert.throws(
    () => toJobRequest(workflow, job, origin),
    (e: unknown) => e instanceof WorkflowError && e.message.includes("--secret API_TOKEN"),
  );
});

test("secrets read in a script or in env text travel sealed too, by name in any case, all of them when read by a computed key", () => {
  const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("test")));
  const values = { TOKEN: "t-1", Region: "eu-2", OTHER: "o-3" };
  const planned = (text: string) => {
    const workflow = parseWorkflow(text, { file: "ci.yml" });
    const job = workflow.jobs[0];
    assert.ok(job);
    return toJobRequest(workflow, job, { ...origin, secrets: { values, keyring } });
  };
  const named = planned(
    `jobs:\n  a:\n    runs-on: x\n    env:\n      AUTH: Bearer \${{ secrets.token }}\n    steps:\n      - run: deploy \${{ secrets.REGION }}\n`,
  );
  assert.deepEqual(
    named.secrets.map((s) => s.name),
    ["Region", "TOKEN"],
  );
  for (const secret of named.secrets) {
    assert.ok(secret.value);
    assert.equal(keyring.unseal(secret.value, secretContext(named.jobId, secret.name)), values[secret.name as "TOKEN"]);
  }
  const computed = planned(`jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \${{ secrets[github.ref] }}\n`);
  assert.deepEqual(
    computed.secrets.map((s) => s.name),
    ["OTHER", "Region", "TOKEN"],
  );
  const unsealable = parseWorkflow(
    `jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \${{ secrets.TOKEN }}\n`,
    {
      file: "ci.yml",
    },
  );
  const [job] = unsealable.jobs;
  assert.ok(job);
  assert.throws(
    () => toJobRequest(unsealable, job, origin),
    (e: unknown) => e instanceof WorkflowError && e.message.includes("--secret TOKEN"),
  );
});
