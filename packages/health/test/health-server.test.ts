import assert from "node:assert/strict";
import { test } from "node:test";
import { Counter, Registry } from "prom-client";
import { startHealthServer } from "../src/health-server.ts";

test("/healthz answers, /readyz follows the service's rule, /metrics serves the registry, anything else is 404", async () => {
  const registry = new Registry();
  const counter = new Counter({ name: "health_test_total", help: "a test series", registers: [registry] });
  counter.inc(3);
  let readiness: { ready: boolean; reason?: string } = { ready: false, reason: "broker not connected" };
  const server = await startHealthServer({ host: "127.0.0.1", port: 0, registry, ready: () => readiness });
  const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;
  try {
    assert.equal((await fetch(url("/healthz"))).status, 200);
    const notReady = await fetch(url("/readyz"));
    assert.equal(notReady.status, 503);
    assert.equal(await notReady.text(), "broker not connected\n");
    readiness = { ready: true };
    assert.equal((await fetch(url("/readyz"))).status, 200);
    const metrics = await fetch(url("/metrics"));
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain/);
    assert.match(await metrics.text(), /^health_test_total 3$/m);
    assert.equal((await fetch(url("/nope"))).status, 404);
    assert.equal((await fetch(url("/healthz"), { method: "POST" })).status, 405);
  } finally {
    await server.close();
  }
});
