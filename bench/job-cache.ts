// The job cache's throughput against the machine's own limit, and what it saves a job.
//
// 1. Host: a 200 MB directory (half random bytes, half repetitive text) saved and restored with
//    GitHub's cache library (@actions/cache, as actions/cache runs it) through the job cache server
//    on loopback, next to `tar` + `cp` of the same directory (the physical limit: archive and copy,
//    no compression, no HTTP, no checksum).
// 2. Guest: a job whose dependency step makes a 20 MB directory, against the same job restoring it
//    from the cache (a tiny VM under TCG each, the restore action carried in with Node).
// Usage: corepack pnpm bench:cache [--runs N] [--vm-runs N]
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { parseArgs, promisify } from "node:util";
import * as cache from "@actions/cache";
import { hostActionProvider, JobEventStream, runJob } from "@solstice/executor";
import { guestCacheAccess, startJobCacheServer } from "@solstice/job-cache";
import { JobSource, Outcome } from "@solstice/protocol";
import { createQemuBackend, GUEST_GATEWAY_ADDRESS } from "@solstice/vm";
import { parseWorkflow, toJobRequest } from "@solstice/workflow";
import { pino } from "pino";
import { cacheTestAction } from "../test/support/bundled-action.ts";
import { startGitHttpServer } from "../test/support/git-http-server.ts";
import { formatTable, median } from "./summary-table.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "3" }, "vm-runs": { type: "string", default: "2" } },
});
const RUNS = Number(values.runs);
const VM_RUNS = Number(values["vm-runs"]);
const MB = 1024 * 1024;
const run = promisify(execFile);
const log = pino({ level: "silent" });
const root = await mkdtemp(path.join(tmpdir(), "solstice-bench-cache-"));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");
const loadBefore = load();

const timed = async (work: () => Promise<unknown>): Promise<number> => {
  const started = performance.now();
  await work();
  return performance.now() - started;
};
const rate = (ms: number, bytes = 200 * MB) => `${((bytes / MB / ms) * 1000).toFixed(0)} MB/s`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const server = await startJobCacheServer({ dir: path.join(root, "store"), maxBytes: 4096 * MB, port: 0, log });
try {
  // --- 1. host ------------------------------------------------------------------------------
  const workspace = path.join(root, "ws");
  const deps = path.join(workspace, "deps");
  await mkdir(deps, { recursive: true });
  const text = Buffer.from(
    "export function add(a, b) { return a + b; } // a line of some library's source\n".repeat(14_000),
  ).subarray(0, MB);
  for (let i = 0; i < 100; i++) {
    await run("head", ["-c", String(MB), "/dev/urandom"], { encoding: "buffer", maxBuffer: 2 * MB }).then(
      ({ stdout }) => writeFile(path.join(deps, `random-${i}.bin`), stdout),
    );
    await writeFile(path.join(deps, `text-${i}.js`), text);
  }
  process.env.RUNNER_TEMP = path.join(root, "runner-temp");
  await mkdir(process.env.RUNNER_TEMP);
  delete process.env.ACTIONS_CACHE_SERVICE_V2;
  process.chdir(workspace);

  const samples: Record<string, number[]> = {};
  const add = (name: string, ms: number) => {
    samples[name] = [...(samples[name] ?? []), ms];
  };
  for (let i = 0; i < RUNS; i++) {
    const tarFile = path.join(root, "deps.tar");
    const stored = path.join(root, "stored.tar");
    const out = path.join(root, `out-${i}`);
    await mkdir(out);
    add(
      "tar + cp (save)",
      await timed(() => run("tar", ["-cf", tarFile, "-C", workspace, "deps"]).then(() => run("cp", [tarFile, stored]))),
    );
    add(
      "cp + tar (restore)",
      await timed(() => run("cp", [stored, tarFile]).then(() => run("tar", ["-xf", tarFile, "-C", out]))),
    );
    await rm(out, { recursive: true, force: true });

    const opening = server.open("bench/repo", `http://127.0.0.1:${server.port}/`);
    process.env.ACTIONS_CACHE_URL = opening.url;
    add("@actions/cache save", await timed(() => cache.saveCache(["deps"], `deps-${i}`)));
    await rm(deps, { recursive: true, force: true });
    add("@actions/cache restore", await timed(() => cache.restoreCache(["deps"], `deps-${i}`)));
    await opening.close();
  }
  console.log(`\nHost: a 200 MB directory (100 × 1 MiB random, 100 × 1 MiB text), ${RUNS} runs, medians`);
  console.log(
    formatTable(
      ["operation", "median", "throughput", "runs"],
      Object.entries(samples).map(([name, xs]) => [name, secs(median(xs)), rate(median(xs)), String(xs.length)]),
    ),
  );

  // --- 2. guest -----------------------------------------------------------------------------
  const git = await startGitHttpServer();
  const actionsDir = path.join(root, "actions");
  const runDir = path.join(root, "vms");
  await mkdir(runDir);
  try {
    await git.publish("bench/cache", await cacheTestAction(), ["v1"]);
    const actions = hostActionProvider({ log, defaultUrl: git.url, cacheDir: actionsDir });
    const backend = createQemuBackend({ log, accelerator: "tcg", runRoot: runDir, hostPorts: [server.port] });
    await backend.ensureImage("tiny");
    const jobCache = guestCacheAccess(server, GUEST_GATEWAY_ADDRESS);
    const BUILD =
      "mkdir -p deps && i=0 && while [ $i -lt 200 ]; do head -c 102400 /dev/urandom | gzip -9 > deps/f$i.gz; i=$((i+1)); done && du -sh deps";
    const jobs = {
      seed: `jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - run: ${JSON.stringify(BUILD)}\n      - uses: bench/cache@v1\n        with: { mode: save, path: deps, key: deps-linux }\n`,
      without: `jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - run: ${JSON.stringify(BUILD)}\n`,
      with: `jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - id: restore\n        uses: bench/cache@v1\n        with: { mode: restore, path: deps, key: deps-linux }\n      - if: steps.restore.outputs.hit == ''\n        run: ${JSON.stringify(BUILD)}\n`,
    };
    const runOne = async (text: string) => {
      const workflow = parseWorkflow(text, { file: "bench.yml" });
      const [job] = workflow.jobs;
      if (!job) throw new Error("no job");
      const request = toJobRequest(workflow, job, {
        source: JobSource.MANUAL,
        owner: "bench",
        repository: { url: "", fullName: "bench/repo", commitSha: "0".repeat(40), ref: "refs/heads/main" },
      });
      const steps = new Map<number, number>();
      let nodeCarriedMs = 0;
      const started = performance.now();
      const events = new JobEventStream(request.jobId, request.attempt, async (event) => {
        if (event.body.case === "log") {
          for (const line of event.body.value.lines) {
            const carried = /^Node \S+ carried into the guest in ([\d.]+) s/.exec(line.text);
            if (carried) nodeCarriedMs = Number(carried[1]) * 1000;
          }
        }
        if (event.body.case === "stepStarted") steps.set(event.body.value.index, performance.now());
        if (event.body.case === "stepFinished") {
          const at = steps.get(event.body.value.index) ?? performance.now();
          steps.set(event.body.value.index, performance.now() - at);
        }
      });
      const result = await runJob({
        job: request,
        backend,
        events,
        signal: new AbortController().signal,
        log,
        actions,
        jobCache,
      });
      if (result.result !== Outcome.SUCCESS) throw new Error(`bench job failed: ${result.reason}`);
      return { total: performance.now() - started, firstStep: steps.get(0) ?? 0, nodeCarriedMs };
    };
    await runOne(jobs.seed);
    const vm: Record<string, { total: number[]; step: number[]; node: number[] }> = {
      without: { total: [], step: [], node: [] },
      with: { total: [], step: [], node: [] },
    };
    for (let i = 0; i < VM_RUNS; i++) {
      for (const variant of ["without", "with"] as const) {
        const r = await runOne(jobs[variant]);
        vm[variant]?.total.push(r.total);
        vm[variant]?.step.push(r.firstStep);
        vm[variant]?.node.push(r.nodeCarriedMs);
      }
    }
    console.log(
      `Guest (tiny, TCG): the second job, its 20 MB dependency directory built or restored, ${VM_RUNS} runs, medians`,
    );
    console.log(
      formatTable(
        ["job", "dependency step (build, or restore)", "Node carried in (overlaps)", "whole job (boot included)"],
        Object.entries(vm).map(([name, r]) => [
          name === "with" ? "with the cache (restore)" : "without (build)",
          secs(median(r.step)),
          name === "with" ? secs(median(r.node)) : "-",
          secs(median(r.total)),
        ]),
      ),
    );
  } finally {
    await git.close();
  }
} finally {
  await server.close();
  process.chdir(tmpdir());
  await rm(root, { recursive: true, force: true });
  console.log(`load average before: ${loadBefore}; after: ${load()}`);
}
