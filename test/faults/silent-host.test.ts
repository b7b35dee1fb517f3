import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { followCiadm } from "../support/ciadm.ts";
import { leftovers } from "../support/fleet.ts";
import { type HostProcess, type ProcessFleet, startProcessFleet } from "../support/process-fleet.ts";

let fleet: ProcessFleet;
let host: HostProcess;
let dir: string;
before(async () => {
  fleet = await startProcessFleet();
  host = await fleet.startHost("silent-a", "tiny=1");
  dir = await mkdtemp(path.join(tmpdir(), "solstice-silent-"));
});
after(async () => {
  host?.child.kill("SIGCONT");
  await fleet?.close();
  await rm(dir, { recursive: true, force: true });
});

async function waitForQemu(runRoot: string, present: boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await leftovers(runRoot)).qemu.length > 0 !== present) {
    assert.ok(Date.now() < deadline, `QEMU ${present ? "never started" : "still runs"} under ${runRoot}`);
    await sleep(250);
  }
}

test("ciadm run --lease/--max-attempts: a host that goes silent mid-job loses it, the run says why, and the host drops the VM once it wakes (tiny guest, TCG)", {
  timeout: 300_000,
}, async (t) => {
  const workflow = path.join(dir, "silent.yml");
  await writeFile(
    workflow,
    "on: push\njobs:\n  hang:\n    runs-on: tiny\n    steps:\n      - run: echo started; sleep 240\n",
  );
  const run = followCiadm(["run", workflow, "--lease", "6", "--max-attempts", "1"], fleet.ciadmEnv);

  await waitForQemu(host.runRoot, true, 120_000);
  // Frozen, the host sends neither heartbeats nor events: to its owner it is lost.
  host.child.kill("SIGSTOP");
  const stoppedAt = Date.now();
  // The host heartbeats every second (support/process-fleet.ts): three missed ones are told at once.
  await run.stderrMatches(/has sent nothing for 3 s \(it sends a heartbeat every 1 s\): it may have stopped/, 10_000);
  const noticedMs = Date.now() - stoppedAt;
  t.diagnostic(`the run said the host went quiet ${noticedMs} ms after it froze`);
  assert.ok(noticedMs < 5_000, `told within seconds (${noticedMs} ms)`);
  await run.stderrMatches(
    /attempt 1 sent no event for 6 s: its host is lost or cut off; no attempts left \(1 allowed\)/,
    60_000,
  );
  t.diagnostic(`the run gave the job up ${Date.now() - stoppedAt} ms after the host froze (lease 6 s)`);
  const result = await run.done;
  assert.equal(result.code, 1, result.stdout + result.stderr);
  assert.match(result.stdout, /Summary:\n\s+hang\s+failed/);

  // The owner's Cancel waits in the broker for the host; woken, it stops the job and its VM.
  host.child.kill("SIGCONT");
  await waitForQemu(host.runRoot, false, 60_000);
});
