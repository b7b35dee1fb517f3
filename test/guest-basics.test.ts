import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { JobEventStream, rememberedBasics, runJob } from "@solstice/executor";
import { type JobEvent, LogStream, Outcome } from "@solstice/protocol";
import { createQemuBackend, type Vm, type VmBackend } from "@solstice/vm";
import { pino } from "pino";
import { tinyJob } from "./support/fleet.ts";

// A job on a guest whose basics (home, shell, PATH, platform) an earlier job of this process
// learned on a guest of the same identity skips that round trip: its directories and event
// payload ride on its first step. Two cold tiny VMs in a row (TCG), one at a time.

const log = pino({ level: process.env.SOLSTICE_TEST_LOG ?? "silent" });

test("the second cold job on an image reuses the first one's guest basics and still has its workspace and event payload", {
  timeout: 300_000,
}, async () => {
  const runRoot = await mkdtemp(path.join(tmpdir(), "solstice-vms-"));
  try {
    const qemu = createQemuBackend({ log, accelerator: "tcg", runRoot });
    const booted: Vm[] = [];
    const backend: VmBackend = {
      ...qemu,
      boot: async (spec) => {
        const vm = await qemu.boot(spec);
        booted.push(vm);
        return vm;
      },
    };
    const run = async () => {
      const job = tinyJob("basics", [
        { name: "where", run: 'echo "event=$(cat "$GITHUB_EVENT_PATH")"; echo "pwd=$(pwd)"; echo "os=$RUNNER_OS"' },
      ]);
      const events: JobEvent[] = [];
      const stream = new JobEventStream(job.jobId, job.attempt, async (event) => {
        events.push(event);
      });
      const result = await runJob({ job, backend, events: stream, signal: new AbortController().signal, log });
      assert.equal(result.result, Outcome.SUCCESS, result.reason);
      return events.flatMap((e) =>
        e.body.case === "log" ? e.body.value.lines.filter((l) => l.stream === LogStream.STDOUT).map((l) => l.text) : [],
      );
    };

    const first = await run();
    const identity = booted[0]?.guestIdentity;
    assert.ok(identity, "the qemu backend names its guests' identity");
    assert.equal(rememberedBasics(identity)?.home, "/root", "the first job's basics are remembered");
    const second = await run();
    assert.equal(booted[1]?.guestIdentity, identity, "a guest of the same image has the same identity");
    for (const lines of [first, second]) {
      assert.deepEqual(lines, ["event={}", "pwd=/root/workspace/test", "os=Linux"]);
    }
  } finally {
    await rm(runRoot, { recursive: true, force: true });
  }
});
