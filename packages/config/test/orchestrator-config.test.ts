import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, effectiveMaxVms, loadConfig, orchestratorConfigSchema } from "../src/index.ts";

const base = {
  SOLSTICE_AMQP_URL: "amqp://guest:guest@127.0.0.1:5672",
  SOLSTICE_DATABASE_URL: "postgres://postgres@127.0.0.1/postgres",
};

test("capacity per label and the total bound are read from the environment", () => {
  const config = loadConfig("orchestrator", orchestratorConfigSchema, {
    ...base,
    SOLSTICE_CAPACITY: "omnios-r151054=2, ubuntu-24.04=4",
    SOLSTICE_MAX_VMS: "5",
  });
  assert.deepEqual(config.capacity, { "omnios-r151054": 2, "ubuntu-24.04": 4 });
  assert.equal(effectiveMaxVms(config), 5);
});

test("without a total bound the sum of per-label slots is used", () => {
  const config = loadConfig("orchestrator", orchestratorConfigSchema, {
    ...base,
    SOLSTICE_CAPACITY: "tiny=2,debian-12=1",
  });
  assert.equal(effectiveMaxVms(config), 3);
});

test("a bad setting is refused at start-up naming the variable", () => {
  assert.throws(
    () => loadConfig("orchestrator", orchestratorConfigSchema, { ...base, SOLSTICE_CAPACITY: "tiny=two" }),
    (e: unknown) =>
      e instanceof ConfigError && e.message.includes("SOLSTICE_CAPACITY") && e.message.includes("tiny=two"),
  );
  assert.throws(
    () => loadConfig("orchestrator", orchestratorConfigSchema, { SOLSTICE_CAPACITY: "tiny=1" }),
    (e: unknown) => e instanceof ConfigError && e.message.includes("SOLSTICE_AMQP_URL"),
  );
});

test("the warm pool is read per label, labels with 0 have none, and the default is no pool", () => {
  const config = loadConfig("orchestrator", orchestratorConfigSchema, {
    ...base,
    SOLSTICE_CAPACITY: "tiny=2,debian-12=1",
    SOLSTICE_WARM_POOL: "tiny=1,debian-12=0",
  });
  assert.deepEqual(config.warmPool, { tiny: 1 });
  const none = loadConfig("orchestrator", orchestratorConfigSchema, { ...base, SOLSTICE_CAPACITY: "tiny=2" });
  assert.deepEqual(none.warmPool, {});
});

test("a warm pool larger than its label's slots, or for a label not served, is refused at start-up", () => {
  const load = (pool: string) =>
    loadConfig("orchestrator", orchestratorConfigSchema, {
      ...base,
      SOLSTICE_CAPACITY: "tiny=1",
      SOLSTICE_WARM_POOL: pool,
    });
  assert.throws(
    () => load("tiny=2"),
    (e: unknown) =>
      e instanceof ConfigError && /SOLSTICE_WARM_POOL: pool of 2 for "tiny" exceeds its 1 slot/.test(e.message),
  );
  assert.throws(
    () => load("debian-12=1"),
    (e: unknown) => e instanceof ConfigError && /SOLSTICE_WARM_POOL: .*"debian-12".*does not serve/.test(e.message),
  );
  assert.throws(
    () => load("tiny=-1"),
    (e: unknown) => e instanceof ConfigError && e.message.includes("SOLSTICE_WARM_POOL"),
  );
});
