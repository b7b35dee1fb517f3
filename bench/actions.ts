// The first job with an action on a host (cold: the host's action cache is empty) against the
// next one (warm: the action from the cache), each in a fresh tiny VM under TCG, fetched both
// ways the forges hand actions out: Forgejo's (git from the default actions URL) and GitHub's
// (the action download info's tarball, downloaded with its token). Each round starts from an
// empty action cache; Node's runtime stays in the host's cache (fetched once per host and Node
// version, not per job). Prints medians side by side.
// Usage: corepack pnpm bench:actions [--rounds 3]

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type ActionProvider, hostActionProvider, JobEventStream, runJob } from "@solstice/executor";
import {
  ActionArchiveSchema,
  actionTokenContext,
  create,
  FleetKeyring,
  generateFleetKey,
  type JobRequest,
  JobSource,
  parseFleetKeys,
} from "@solstice/protocol";
import { createQemuBackend } from "@solstice/vm";
import { parseWorkflow, toJobRequest } from "@solstice/workflow";
import { pino } from "pino";
import { FakeActionRepositories, serveTarballs } from "../test/fakes/github/fake-actions.ts";
import { freshActionCache } from "../test/support/action-cache.ts";
import { startGitHttpServer } from "../test/support/git-http-server.ts";
import { formatTable, median } from "./summary-table.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" } } });
const rounds = Math.max(1, Number(values.rounds));

const ACTION = {
  "action.yml": "name: bench\ninputs:\n  who:\n    default: bench\nruns:\n  using: node20\n  main: index.js\n",
  "index.js": 'console.log("hello " + process.env.INPUT_WHO);\n',
};
const WORKFLOW = "jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - uses: bench/hello@v1\n";

interface Sample {
  hostMs: number;
  downloads: number;
  bootMs: number;
  nodeMs: number;
  stepMs: number;
  jobMs: number;
  ok: boolean;
}

const log = pino({ level: "silent" });
const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("bench")));
const git = await startGitHttpServer();
const repos = await FakeActionRepositories.create();
const tarballs = await serveTarballs(repos);
const runDir = await mkdtemp(path.join(tmpdir(), "solstice-bench-run-"));

function jobRequest(): JobRequest {
  const workflow = parseWorkflow(WORKFLOW, { file: "bench.yml" });
  const [job] = workflow.jobs;
  if (!job) throw new Error("no job");
  return toJobRequest(workflow, job, {
    source: JobSource.MANUAL,
    owner: "bench",
    repository: { url: "", fullName: "bench/repo", commitSha: "0".repeat(40), ref: "refs/heads/main" },
  });
}

/** GitHub's way: what the github-runner puts in the JobRequest after the action download info. */
async function withArchive(request: JobRequest): Promise<JobRequest> {
  const info = await repos.resolve("bench/hello", "v1", tarballs.url);
  if (!info) throw new Error("bench/hello@v1 does not resolve");
  request.actionArchives.push(
    create(ActionArchiveSchema, {
      reference: "bench/hello@v1",
      resolvedRepository: info.resolvedNameWithOwner,
      commitSha: info.resolvedSha,
      tarballUrl: info.tarballUrl,
      token: keyring.seal(info.token, actionTokenContext(request.jobId, "bench/hello@v1")),
    }),
  );
  return request;
}

try {
  await git.publish("bench/hello", ACTION, ["v1"]);
  await repos.publish("bench/hello", ACTION, ["v1"]);
  const backend = createQemuBackend({ log, accelerator: "tcg", runRoot: runDir });
  await backend.ensureImage("tiny");
  const ways = {
    "git (Forgejo/Gitea)": { request: async () => jobRequest(), downloads: () => git.packFetches("bench/hello") },
    "tarball (GitHub)": { request: () => withArchive(jobRequest()), downloads: () => repos.downloadsOf("bench/hello") },
  };
  const samples = new Map<string, Sample[]>();
  const runOne = async (provider: ActionProvider, request: JobRequest, downloads: () => number): Promise<Sample> => {
    const lines: { text: string; at: number }[] = [];
    const events = new JobEventStream(request.jobId, request.attempt, async (event) => {
      if (event.body.case === "log")
        for (const l of event.body.value.lines) lines.push({ text: l.text, at: Date.now() });
    });
    const before = downloads();
    const started = Date.now();
    const result = await runJob({
      job: request,
      backend,
      events,
      signal: new AbortController().signal,
      log,
      actions: provider,
      keyring,
    });
    const carried = Number(
      lines.find((l) => l.text.startsWith("Node "))?.text.match(/in ([\d.]+) s/)?.[1] ?? Number.NaN,
    );
    return {
      hostMs: (lines.find((l) => l.text.startsWith("Action "))?.at ?? started) - started,
      downloads: downloads() - before,
      bootMs: result.bootMs ?? 0,
      nodeMs: carried * 1000,
      stepMs: result.steps[0]?.durationMs ?? 0,
      jobMs: Date.now() - started,
      ok: result.steps[0]?.outcome === 1,
    };
  };
  for (let round = 1; round <= rounds; round++) {
    for (const [way, { request, downloads }] of Object.entries(ways)) {
      const cache = await freshActionCache();
      try {
        const provider = hostActionProvider({ log, defaultUrl: git.url, cacheDir: cache.dir });
        for (const when of ["cold", "warm"]) {
          const sample = await runOne(provider, await request(), downloads);
          const key = `${way} ${when}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          console.error(`round ${round} ${key}: ${(sample.jobMs / 1000).toFixed(1)} s${sample.ok ? "" : " (FAILED)"}`);
        }
      } finally {
        await cache.close();
      }
    }
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const rows = [...samples.entries()].map(([key, xs]) => [
    key,
    s(median(xs.map((x) => x.hostMs))),
    String(median(xs.map((x) => x.downloads))),
    s(median(xs.map((x) => x.bootMs))),
    s(median(xs.map((x) => x.nodeMs))),
    s(median(xs.map((x) => x.stepMs))),
    s(median(xs.map((x) => x.jobMs))),
    `${xs.filter((x) => x.ok).length}/${xs.length}`,
  ]);
  console.log(
    `medians of ${rounds} round(s), each from an empty action cache\n${formatTable(
      ["job", "action on host", "downloads", "VM ready", "Node into guest", "action step", "whole job", "ok"],
      rows,
    )}`,
  );
} finally {
  await git.close();
  await tarballs.close();
  await repos.close();
  await rm(runDir, { recursive: true, force: true });
}
