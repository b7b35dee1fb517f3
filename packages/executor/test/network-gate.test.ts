import assert from "node:assert/strict";
import { test } from "node:test";
import { create, JobRequestSchema, type PlannedStep } from "@solstice/protocol";
import { networkGate } from "../src/network-gate.ts";

function job(kinds: ("run" | "checkout")[]) {
  return create(JobRequestSchema, {
    steps: kinds.map((kind, index) =>
      kind === "run"
        ? { index, name: `run ${index}`, action: { case: "run" as const, value: { script: "true", shell: "sh {0}" } } }
        : { index, name: `checkout ${index}`, action: { case: "checkout" as const, value: { path: "" } } },
    ),
  });
}

/** Walks the steps through the gate and returns the index of the step the network was cut before. */
async function cutBefore(policy: "outbound" | "none-after-checkout" | undefined, steps: PlannedStep[]) {
  let cuts = 0;
  let cutAt: number | undefined;
  const lines: string[] = [];
  const gate = networkGate(policy, { steps }, { line: (text: string) => lines.push(text) });
  for (const step of steps) {
    await gate.beforeStep(step, {
      async cutNetwork() {
        cuts++;
        cutAt = step.index;
      },
    });
  }
  assert.ok(cuts <= 1, "the network is cut at most once");
  if (cutAt !== undefined) assert.match(lines.join("\n"), /network is cut/);
  return cutAt;
}

test("none-after-checkout cuts the network right before the first step after the last checkout", async () => {
  assert.equal(await cutBefore("none-after-checkout", job(["run", "checkout", "run", "run"]).steps), 2);
  assert.equal(await cutBefore("none-after-checkout", job(["checkout", "run", "checkout", "run"]).steps), 3);
});

test("without a checkout step the network is cut before the first step; with nothing after it, never", async () => {
  assert.equal(await cutBefore("none-after-checkout", job(["run", "run"]).steps), 0);
  assert.equal(await cutBefore("none-after-checkout", job(["run", "checkout"]).steps), undefined);
});

test("outbound, the default, never cuts", async () => {
  assert.equal(await cutBefore("outbound", job(["checkout", "run"]).steps), undefined);
  assert.equal(await cutBefore(undefined, job(["checkout", "run"]).steps), undefined);
});

test("a VM that cannot be cut off fails the job instead of running on with the network", async () => {
  const { steps } = job(["checkout", "run"]);
  const gate = networkGate("none-after-checkout", { steps }, { line: () => undefined });
  const [checkout, run] = steps as [PlannedStep, PlannedStep];
  await gate.beforeStep(checkout, {});
  await assert.rejects(gate.beforeStep(run, {}), /none-after-checkout.*cannot be cut off/);
});
