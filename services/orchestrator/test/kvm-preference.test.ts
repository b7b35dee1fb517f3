import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { MemoryJobStore } from "@solstice/db";
import { pino } from "pino";
import { KvmPreference } from "../src/kvm-preference.ts";

const log = pino({ level: "silent" });
const now = new Date("2026-12-06T17:00:00Z");
const secondsAgo = (s: number) => new Date(now.getTime() - s * 1000);

/** This host: x86_64 under KVM (tiny), aarch64 emulated (tiny-arm64). */
function preference(store: MemoryJobStore): KvmPreference {
  return new KvmPreference({
    hostId: "x86-host",
    store,
    platforms: {
      x86_64: { accelerator: "kvm", reason: "probe", labels: ["tiny"] },
      aarch64: { accelerator: "tcg", reason: "other arch", labels: ["tiny-arm64"] },
    },
    liveWithinMs: 15_000,
    log,
  });
}

async function registerArmHost(store: MemoryJobStore, opts: { heartbeat?: Date; accelerator?: string } = {}) {
  await store.upsertHost(
    {
      id: "arm-host",
      labels: { "tiny-arm64": 1 },
      maxVms: 1,
      version: "0.1.0",
      backend: "qemu",
      accelerator: opts.accelerator ?? "aarch64=kvm",
      startedAt: secondsAgo(60),
    },
    opts.heartbeat ?? secondsAgo(2),
  );
}

async function runArmJob(store: MemoryJobStore): Promise<void> {
  const jobId = randomUUID();
  await store.recordQueued({
    jobId,
    attempt: 1,
    source: "manual",
    owner: "ciadm",
    label: "tiny-arm64",
    repoUrl: "file:///r",
    repoFullName: "r",
    commitSha: "0".repeat(40),
    ref: "refs/heads/main",
    workflowPath: "ci.yml",
    jobKey: "build",
    jobName: "build",
    steps: [{ index: 0, name: "make" }],
  });
  assert.ok(await store.markRunning(jobId, 1, "arm-host", secondsAgo(1)));
}

test("an emulated label is left to a live KVM host of its arch while that host has a free slot", async () => {
  const store = new MemoryJobStore();
  const pref = preference(store);
  await pref.refresh(now);
  assert.equal(pref.defers("tiny-arm64"), false, "no KVM host: this host takes the label");
  await registerArmHost(store);
  await pref.refresh(now);
  assert.equal(pref.defers("tiny-arm64"), true);
  assert.equal(pref.defers("tiny"), false, "a label this host runs under KVM is never held back");
  await runArmJob(store);
  await pref.refresh(now);
  assert.equal(pref.defers("tiny-arm64"), false, "the KVM host is full: this host takes the job");
});

test("a KVM host that is silent, draining or emulating too does not hold the label back", async () => {
  const store = new MemoryJobStore();
  const pref = preference(store);
  await registerArmHost(store, { heartbeat: secondsAgo(30) });
  await pref.refresh(now);
  assert.equal(pref.defers("tiny-arm64"), false, "silent for three heartbeats");
  await registerArmHost(store);
  await store.setDraining("arm-host", true);
  await pref.refresh(now);
  assert.equal(pref.defers("tiny-arm64"), false, "draining");
  await store.setDraining("arm-host", false);
  await registerArmHost(store, { accelerator: "x86_64=tcg,aarch64=tcg" });
  await pref.refresh(now);
  assert.equal(pref.defers("tiny-arm64"), false, "that host emulates aarch64 as well");
});
