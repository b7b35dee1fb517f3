import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Bus, connectBus } from "@solstice/bus";
import { FleetKeyring, generateFleetKey, parseFleetKeys } from "@solstice/protocol";
import { pino } from "pino";
import { type FakeForgejo, startFakeForgejo } from "./fakes/forgejo/fake-forgejo.ts";
import { AMQP_URL } from "./support/fleet.ts";
import { type RunningRunner, startRegisteredRunner } from "./support/forgejo-daemon.ts";
import { type Relay, startRelay } from "./support/tcp-relay.ts";

// The runner reaches RabbitMQ through a relay the test cuts: while the broker is away the runner
// must take no task from the forge (it could not hand it on), and take tasks again once it is back.
// No job is queued in the forge, so no VM is needed: what is checked is the FetchTask calls.

const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("brokeraway")));
const namespace = `test-${randomUUID().slice(0, 8)}`;
let forge: FakeForgejo;
let relay: Relay;
let bus: Bus;
let runner: RunningRunner | undefined;

const fetches = () => forge.calls.filter((c) => c.procedure.endsWith("/FetchTask")).length;

async function until(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    assert.ok(Date.now() < deadline, `${what} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

before(async () => {
  forge = await startFakeForgejo();
  relay = await startRelay(new URL(AMQP_URL));
  const relayed = new URL(AMQP_URL);
  relayed.hostname = "127.0.0.1";
  relayed.port = String(relay.port);
  bus = await connectBus({ url: relayed.toString(), namespace, log });
  runner = await startRegisteredRunner({
    forge,
    name: "broker-away",
    bus,
    namespace,
    keyring,
    log,
    config: { fetchIntervalMs: 100, metricsPort: 0 },
  });
});
after(async () => {
  relay?.restore();
  await runner?.stop(1000);
  await bus?.deleteNamespace();
  await bus?.close();
  await relay?.close();
  await forge?.close();
});

test("with the broker away the runner asks the forge for no task, says why it is not ready, and resumes when it is back", {
  timeout: 120_000,
}, async (t) => {
  await until("the runner polls the forge", 30_000, () => fetches() >= 3);
  assert.equal(runner?.daemon.readiness().ready, true);

  relay.cut();
  await until("the runner notices the broker is gone", 30_000, () => !bus.connected);
  const atCut = fetches();
  await sleep(3_000);
  // One FetchTask may have been in flight when the connection dropped.
  assert.ok(fetches() <= atCut + 1, `FetchTask calls while the broker was away: ${fetches() - atCut}`);
  const readiness = runner?.daemon.readiness();
  assert.equal(readiness?.ready, false);
  assert.match(readiness?.reason ?? "", /broker is not connected/);

  relay.restore();
  const restoredAt = Date.now();
  const beforeRestore = fetches();
  await until("the runner polls the forge again", 60_000, () => fetches() >= beforeRestore + 3);
  t.diagnostic(`polling resumed ${Date.now() - restoredAt} ms after the broker came back`);
  assert.equal(runner?.daemon.readiness().ready, true);
});
