import assert from "node:assert/strict";
import { test } from "node:test";
import { bhyveConfigSchema, ConfigError, loadConfig, orchestratorConfigSchema } from "../src/index.ts";

const base = {
  SOLSTICE_AMQP_URL: "amqp://guest:guest@127.0.0.1:5672",
  SOLSTICE_DATABASE_URL: "postgres://postgres@127.0.0.1/postgres",
  SOLSTICE_CAPACITY: "tiny=1,omnios-r151054=1",
};

test("the network policy is read per label, and every label is outbound by default", () => {
  const config = loadConfig("orchestrator", orchestratorConfigSchema, {
    ...base,
    SOLSTICE_NETWORK_POLICY: "omnios-r151054=none-after-checkout, tiny=outbound",
  });
  assert.deepEqual(config.networkPolicy, { "omnios-r151054": "none-after-checkout", tiny: "outbound" });
  assert.deepEqual(loadConfig("orchestrator", orchestratorConfigSchema, base).networkPolicy, {});
});

test("an unknown network policy is refused at start-up, naming the variable and the choices", () => {
  assert.throws(
    () => loadConfig("orchestrator", orchestratorConfigSchema, { ...base, SOLSTICE_NETWORK_POLICY: "tiny=none" }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /SOLSTICE_NETWORK_POLICY: "tiny=none" is not label=policy with policy outbound or none-after-checkout/.test(
        e.message,
      ),
  );
});

test("the backend is qemu unless SOLSTICE_BACKEND says bhyve", () => {
  assert.equal(loadConfig("orchestrator", orchestratorConfigSchema, base).backend, "qemu");
  assert.equal(
    loadConfig("orchestrator", orchestratorConfigSchema, { ...base, SOLSTICE_BACKEND: "bhyve" }).backend,
    "bhyve",
  );
  assert.throws(
    () => loadConfig("orchestrator", orchestratorConfigSchema, { ...base, SOLSTICE_BACKEND: "kvm" }),
    (e: unknown) => e instanceof ConfigError && e.message.includes("SOLSTICE_BACKEND"),
  );
});

test("the bhyve settings are read from SOLSTICE_BHYVE_*, with defaults, and every missing one is named", () => {
  const config = loadConfig("orchestrator", bhyveConfigSchema, {
    SOLSTICE_BHYVE_CLONE_PARENT: "rpool/solstice/vms",
    SOLSTICE_BHYVE_IMAGE_DATASET: "rpool/solstice/images",
    SOLSTICE_BHYVE_LINK: "solstice0",
    SOLSTICE_BHYVE_ADDRESSES: "10.9.0.10-10.9.0.250/24",
    SOLSTICE_BHYVE_GATEWAY: "10.9.0.1",
    SOLSTICE_BHYVE_GATEWAY_INTERFACE: "solstice_gw0",
  });
  assert.equal(config.bhyveGoldenSnapshot, "golden");
  assert.equal(config.bhyveZonesRoot, "/zones");
  assert.equal(config.bhyveGatewayInterface, "solstice_gw0");
  assert.throws(
    () => loadConfig("orchestrator", bhyveConfigSchema, { SOLSTICE_BHYVE_LINK: "not a link" }),
    (e: unknown) =>
      e instanceof ConfigError &&
      ["CLONE_PARENT", "IMAGE_DATASET", "LINK", "ADDRESSES", "GATEWAY"].every((name) =>
        e.message.includes(`SOLSTICE_BHYVE_${name}`),
      ),
  );
});
