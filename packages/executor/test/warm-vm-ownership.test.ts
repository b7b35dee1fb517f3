import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { test } from "node:test";
import { create, type JobEvent, JobRequestSchema, Outcome, SCHEMA_VERSION } from "@solstice/protocol";
import type { Vm, VmBackend } from "@solstice/vm";
import { pino } from "pino";
import { JobEventStream, runJob } from "../src/index.ts";

// A job owns the warm VM it is handed, also when it ends before that VM would start: the warm
// mode of the actions conformance once left one running VM per refused job. The VM here is a
// plain object (nothing boots); the job fails on the host, before any VM is used.

test("a job that fails before its VM starts destroys the warm VM it was handed, and boots nothing", async () => {
  let destroyed = 0;
  let boots = 0;
  const vm: Vm = {
    id: "warm-1",
    ssh: { host: "127.0.0.1", port: 1, username: "root", privateKey: "", hostKey: "" },
    console: Readable.from([]),
    accelerator: "tcg",
    bootMs: 1,
    exited: new Promise<void>(() => {}),
    async destroy() {
      destroyed++;
    },
  };
  const backend = {
    name: "fake",
    boot: async () => {
      boots++;
      throw new Error("no VM may boot for this job");
    },
  } as unknown as VmBackend;
  const job = create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: randomUUID(),
    attempt: 1,
    runsOn: "tiny",
    timeoutSeconds: 60,
    steps: [{ index: 0, name: "an action", action: { case: "uses", value: { uses: "octo/hello@v1" } } }],
  });
  const events: JobEvent[] = [];
  const result = await runJob({
    job,
    backend,
    events: new JobEventStream(job.jobId, job.attempt, async (event) => {
      events.push(event);
    }),
    signal: new AbortController().signal,
    log: pino({ level: "silent" }),
    // No action provider: the job fails while fetching its actions, before startJobVm.
    warm: { vm },
  });
  assert.equal(result.result, Outcome.FAILURE);
  assert.match(result.reason, /runs no actions/);
  assert.equal(destroyed, 1, "the warm VM was destroyed once");
  assert.equal(boots, 0);
});
