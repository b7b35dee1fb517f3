/**
 * Boot benchmark: for each guest image and the accelerator in use, the median over N runs of
 *   raw   — QEMU started by hand with the same machine, devices and seed, until the same readiness
 *           condition our backend waits for (SSH banner; plus `cloud-init status --wait` for
 *           cloud-init images), with keys, seed and overlay made before the clock starts;
 *   ours  — from "job taken" to the first line of output of the job's first step, through the
 *           executor and the qemu backend (keys, seed, overlay, isolated network, boot, SSH, step);
 *   overhead — ours − raw: what Solstice adds per job.
 * Usage: corepack pnpm bench:boot [--runs 5] [--images tiny,debian-12] [--accelerator auto|kvm|tcg]
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { JobEventStream, runJob } from "@solstice/executor";
import { create, JobRequestSchema, JobSource, LogStream, SCHEMA_VERSION } from "@solstice/protocol";
import { createQemuBackend } from "@solstice/vm";
import { pino } from "pino";
import { rawBoot } from "./raw-boot.ts";
import { formatTable, median } from "./summary-table.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    images: { type: "string", default: "tiny,debian-12" },
    accelerator: { type: "string", default: "auto" },
  },
});
const runs = Number(values.runs);
const log = pino({ level: "warn" }, pino.destination(2));
const runRoot = await mkdtemp(path.join(tmpdir(), "solstice-bench-"));
const backend = createQemuBackend({ log, runRoot, accelerator: values.accelerator as "auto" | "kvm" | "tcg" });

async function oursToFirstOutput(label: string): Promise<{ ms: number; accelerator: "kvm" | "tcg" }> {
  const job = create(JobRequestSchema, {
    schemaVersion: SCHEMA_VERSION,
    jobId: randomUUID(),
    attempt: 1,
    source: JobSource.MANUAL,
    owner: "bench",
    runsOn: label,
    timeoutSeconds: 600,
    steps: [
      { index: 0, name: "first", action: { case: "run", value: { script: "echo first-output", shell: "sh -e {0}" } } },
    ],
  });
  let firstOutputAt = 0;
  const started = performance.now();
  const events = new JobEventStream(
    job.jobId,
    1,
    async (event) => {
      if (
        firstOutputAt === 0 &&
        event.body.case === "log" &&
        event.body.value.lines.some((l) => l.stream === LogStream.STDOUT)
      ) {
        firstOutputAt = performance.now();
      }
    },
    { maxDelayMs: 1 },
  );
  const result = await runJob({ job, backend, events, signal: new AbortController().signal, log });
  if (!firstOutputAt || !result.accelerator) throw new Error(`bench job failed: ${result.reason}`);
  return { ms: firstOutputAt - started, accelerator: result.accelerator };
}

const rows: string[][] = [];
try {
  for (const label of values.images.split(",")) {
    const image = await backend.ensureImage(label);
    const warm = await oursToFirstOutput(label); // warms the page cache and the accelerator probe
    const raw: number[] = [];
    const ours: number[] = [];
    for (let i = 0; i < runs; i++) {
      const rawMs = await rawBoot(image, warm.accelerator);
      const oursMs = (await oursToFirstOutput(label)).ms;
      raw.push(rawMs);
      ours.push(oursMs);
      process.stderr.write(
        `${label} run ${i + 1}/${runs}: raw ${(rawMs / 1000).toFixed(2)} s, ours ${(oursMs / 1000).toFixed(2)} s\n`,
      );
    }
    const r = median(raw);
    const o = median(ours);
    rows.push([label, warm.accelerator, (r / 1000).toFixed(2), (o / 1000).toFixed(2), ((o - r) / 1000).toFixed(2)]);
  }
} finally {
  await rm(runRoot, { recursive: true, force: true });
}
const header = ["image", "accel", `raw boot→ready (median of ${runs}, s)`, "ours job→first output (s)", "overhead (s)"];
process.stdout.write(formatTable(header, rows));
