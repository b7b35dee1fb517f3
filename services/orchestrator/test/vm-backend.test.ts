import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, loadConfig, orchestratorConfigSchema } from "@solstice/config";
import { pino } from "pino";
import { vmBackendFor } from "../src/vm-backend.ts";

const log = pino({ level: "silent" });
const base = {
  SOLSTICE_AMQP_URL: "amqp://guest:guest@127.0.0.1:5672",
  SOLSTICE_DATABASE_URL: "postgres://postgres@127.0.0.1/postgres",
  SOLSTICE_CAPACITY: "omnios-stable=2",
};
const bhyveEnv = {
  ...base,
  SOLSTICE_BACKEND: "bhyve",
  SOLSTICE_BHYVE_CLONE_PARENT: "rpool/solstice/vms",
  SOLSTICE_BHYVE_IMAGE_DATASET: "rpool/solstice/images",
  SOLSTICE_BHYVE_LINK: "solstice0",
  SOLSTICE_BHYVE_ADDRESSES: "10.9.0.10-10.9.0.250/24",
  SOLSTICE_BHYVE_GATEWAY: "10.9.0.1",
};

test("the orchestrator runs qemu VMs unless SOLSTICE_BACKEND says bhyve", () => {
  const config = loadConfig("orchestrator", orchestratorConfigSchema, base);
  assert.equal(vmBackendFor(config, log, base).name, "qemu");
});

test("SOLSTICE_BACKEND=bhyve boots catalog labels from the operator's golden zvol snapshots", async () => {
  const config = loadConfig("orchestrator", orchestratorConfigSchema, bhyveEnv);
  const backend = vmBackendFor(config, log, bhyveEnv);
  assert.equal(backend.name, "bhyve");
  const image = await backend.ensureImage("omnios-stable");
  assert.equal(image.label, "omnios-stable");
  assert.equal(image.disk, "rpool/solstice/images/omnios-stable@golden");
  assert.equal(image.diskFormat, "raw");
  assert.ok(image.defaultCpus >= 1 && image.defaultMemoryMiB >= 128);
  await assert.rejects(backend.ensureImage("no-such-label"), /no-such-label/);
});

test("a bhyve host with missing settings is refused at start-up, naming each variable", () => {
  const env = { ...bhyveEnv, SOLSTICE_BHYVE_LINK: "", SOLSTICE_BHYVE_GATEWAY: "not-an-ip" };
  const config = loadConfig("orchestrator", orchestratorConfigSchema, env);
  assert.throws(
    () => vmBackendFor(config, log, env),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message.includes("SOLSTICE_BHYVE_LINK") &&
      e.message.includes("SOLSTICE_BHYVE_GATEWAY"),
  );
});
