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
