// The first job with an action on a host (cold: the action and Node are downloaded) against the
// next one (warm: both from the host's cache), each in a fresh tiny VM under TCG. Prints a table.
// Usage: corepack pnpm bench:actions
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { hostActionProvider, JobEventStream, runJob } from "@solstice/executor";
import { JobSource } from "@solstice/protocol";
import { createQemuBackend } from "@solstice/vm";
import { parseWorkflow, toJobRequest } from "@solstice/workflow";
import { pino } from "pino";
import { startGitHttpServer } from "../test/support/git-http-server.ts";

const ACTION = {
  "action.yml": "name: bench\ninputs:\n  who:\n    default: bench\nruns:\n  using: node20\n  main: index.js\n",
  "index.js": 'console.log("hello " + process.env.INPUT_WHO);\n',
};
const WORKFLOW = "jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - uses: bench/hello@v1\n";

const log = pino({ level: "silent" });
const git = await startGitHttpServer();
const cache = await mkdtemp(path.join(tmpdir(), "solstice-bench-actions-"));
const runDir = await mkdtemp(path.join(tmpdir(), "solstice-bench-run-"));
try {
  await git.publish("bench/hello", ACTION, ["v1"]);
  const provider = hostActionProvider({ log, defaultUrl: git.url, cacheDir: cache });
  const backend = createQemuBackend({ log, accelerator: "tcg", runRoot: runDir });
  await backend.ensureImage("tiny");
  const rows: string[][] = [];
  for (const label of ["cold (first job)", "warm (next job)"]) {
    const workflow = parseWorkflow(WORKFLOW, { file: "bench.yml" });
    const [job] = workflow.jobs;
    if (!job) throw new Error("no job");
    const request = toJobRequest(workflow, job, {
      source: JobSource.MANUAL,
      owner: "bench",
      repository: { url: "", fullName: "bench/repo", commitSha: "0".repeat(40), ref: "refs/heads/main" },
    });
    const lines: { text: string; at: number }[] = [];
    const events = new JobEventStream(request.jobId, request.attempt, async (event) => {
      if (event.body.case === "log")
        for (const l of event.body.value.lines) lines.push({ text: l.text, at: Date.now() });
    });
    const started = Date.now();
    const fetches = git.packFetches("bench/hello");
    const result = await runJob({
      job: request,
      backend,
      events,
      signal: new AbortController().signal,
      log,
      actions: provider,
    });
    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const carried = lines.find((l) => l.text.startsWith("Node "))?.text.match(/in ([\d.]+ s)/)?.[1] ?? "?";
    const fetchedAt = lines.find((l) => l.text.startsWith("Action "))?.at ?? started;
    rows.push([
      label,
      seconds(fetchedAt - started),
      String(git.packFetches("bench/hello") - fetches),
      seconds(result.bootMs ?? 0),
      carried,
      seconds(result.steps[0]?.durationMs ?? 0),
      seconds(Date.now() - started),
      String(result.steps[0]?.outcome === 1 ? "ok" : result.reason),
    ]);
  }
  const header = [
    "job",
    "actions + Node on host",
    "action downloads",
    "VM ready",
    "Node into guest",
    "action step",
    "whole job",
    "result",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  console.log([line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n"));
} finally {
  await git.close();
  await rm(cache, { recursive: true, force: true });
  await rm(runDir, { recursive: true, force: true });
}
