import { hostname } from "node:os";
import path from "node:path";
import { JobEventStream, type LocalCheckoutSource, runJob } from "@solstice/executor";
import type { ImageProgress } from "@solstice/images";
import { type JobRequest, JobSource, Outcome } from "@solstice/protocol";
import { createQemuBackend, type VmBackend } from "@solstice/vm";
import { loadWorkflowFile, type PlannedJob, selectJobs, toJobRequest } from "@solstice/workflow";
import type { Logger } from "pino";
import { orderByNeeds } from "../job-order.ts";
import { formatSummary, JobPrinter, type PrintedJob } from "../job-printer.ts";
import { type LocalRepository, readLocalRepository } from "../local-checkout.ts";
import type { Terminal } from "../terminal.ts";

export interface RunOptions {
  readonly job?: string;
  readonly includeUncommitted: boolean;
  readonly accelerator: "auto" | "kvm" | "tcg";
  readonly imageCache?: string;
  readonly runDir?: string;
}

/**
 * `ciadm run`: runs a workflow's jobs, each in a fresh VM, in `needs` order, printing live
 * output. With no broker configured it runs the same executor as the orchestrator, in this
 * process (the embedded default). Resolves to the process exit code: 0 only if every job
 * succeeded.
 */
export async function runWorkflow(
  workflowPath: string,
  options: RunOptions,
  term: Terminal,
  log: Logger,
): Promise<number> {
  const absolute = path.resolve(workflowPath);
  const repo = await readLocalRepository(path.dirname(absolute), {
    includeUncommitted: options.includeUncommitted,
  }).catch((error: unknown) => error as Error);
  const file = repo instanceof Error ? workflowPath : path.relative(repo.root, absolute);
  const workflow = await loadWorkflowFile(absolute, { file, contexts: planContexts(repo) });
  const jobs = orderByNeeds(selectJobs(workflow, options.job));
  if (repo instanceof Error && jobs.some((j) => j.steps.some((s) => s.kind === "checkout"))) throw repo;

  const backend = createQemuBackend({
    log,
    accelerator: options.accelerator,
    ...(options.imageCache ? { imageCacheDir: options.imageCache } : {}),
    ...(options.runDir ? { runRoot: options.runDir } : {}),
  });
  await backend.reapOrphans();

  const controller = new AbortController();
  const interrupt = () => {
    term.err("\nInterrupted: cancelling the running job and destroying its VM…\n");
    controller.abort(new Error("cancelled from the terminal (Ctrl-C)"));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);

  const results: PrintedJob[] = [];
  const outcomes = new Map<string, Outcome>();
  try {
    for (const job of jobs) {
      const blocker = job.needs.find((n) => outcomes.has(n) && outcomes.get(n) !== Outcome.SUCCESS);
      if (blocker || controller.signal.aborted) {
        term.out(
          `\n⊘ job ${job.name} skipped: ${blocker ? `it needs "${blocker}", which did not succeed` : "cancelled"}\n`,
        );
        outcomes.set(job.key, Outcome.SKIPPED);
        results.push({ name: job.name, result: Outcome.SKIPPED, reason: "skipped", steps: [], durationMs: 0 });
        continue;
      }
      const request = toJobRequest(workflow, job, {
        source: JobSource.MANUAL,
        owner: `ciadm-${hostname()}-${process.pid}`,
        repository: repositoryOf(repo),
      });
      const printed = await runLocalJob(request, job, {
        backend,
        term,
        log,
        signal: controller.signal,
        ...(repo instanceof Error ? {} : { localCheckout: repo.checkout }),
      });
      outcomes.set(job.key, printed.result);
      results.push(printed);
    }
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
  }
  term.out(formatSummary(results));
  return results.every((r) => r.result === Outcome.SUCCESS) ? 0 : 1;
}

async function runLocalJob(
  request: JobRequest,
  job: PlannedJob,
  ctx: { backend: VmBackend; term: Terminal; log: Logger; signal: AbortSignal; localCheckout?: LocalCheckoutSource },
): Promise<PrintedJob> {
  const { term } = ctx;
  term.out(term.bold(`\n━━ job ${job.name} (runs-on: ${job.runsOn}) ━━\n`));
  const printer = new JobPrinter(job.name, request.steps.length, (text) => term.out(text), { color: term.color });
  let printed: PrintedJob | undefined;
  const events = new JobEventStream(request.jobId, request.attempt, async (event) => {
    printed = printer.handle(event) ?? printed;
  });
  const result = await runJob({
    job: request,
    backend: ctx.backend,
    events,
    signal: ctx.signal,
    log: ctx.log.child({ job_id: request.jobId, attempt: request.attempt }),
    imageProgress: progressOn(term),
    ...(ctx.localCheckout ? { localCheckout: ctx.localCheckout } : {}),
  });
  return printed ?? { name: job.name, result: result.result, reason: result.reason, steps: [], durationMs: 0 };
}

function progressOn(term: Terminal): ImageProgress {
  let last = "";
  return ({ phase, detail, fraction }) => {
    const pct = fraction === undefined ? "" : ` ${Math.round(fraction * 100)}%`;
    const text = `image: ${phase}${pct}${detail ? ` (${detail})` : ""}`;
    if (text !== last) term.status(text);
    last = text;
  };
}

function repositoryOf(repo: LocalRepository | Error) {
  if (repo instanceof Error) return { url: "", fullName: "local/workspace", commitSha: "", ref: "" };
  return { url: repo.url, fullName: repo.fullName, commitSha: repo.commitSha, ref: repo.ref };
}

function planContexts(repo: LocalRepository | Error) {
  const r = repositoryOf(repo);
  return {
    github: {
      sha: r.commitSha,
      ref: r.ref,
      ref_name: r.ref.replace(/^refs\/(heads|tags)\//, ""),
      repository: r.fullName,
      repository_owner: r.fullName.split("/")[0] ?? "",
      event_name: "workflow_dispatch",
      actor: process.env.USER ?? "local",
      server_url: "",
    },
    runner: { os: "Linux", arch: "X64", temp: "/tmp" },
  };
}
