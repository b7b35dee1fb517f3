import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { GracefulCancel } from "@solstice/executor";
import { FleetKeyring, JobSource, loadFleetKeyring, Outcome, requireFleetKeyring } from "@solstice/protocol";
import {
  type FinishedJob,
  loadWorkflowFile,
  type PlannedJob,
  planAfterNeeds,
  resolveInputs,
  runGraph,
  selectJobs,
  toJobRequest,
} from "@solstice/workflow";
import type { Logger } from "pino";
import { defaultWorkflow } from "../default-workflow.ts";
import { formatSummary, JobPrinter, outcomeWord, type PrintedJob } from "../job-printer.ts";
import { fleetJobRunner, type JobRunner, localJobRunner } from "../job-runners.ts";
import { mapLabels } from "../label-map.ts";
import { type LocalRepository, readLocalRepository, repositoryRoot } from "../local-checkout.ts";
import { readSecrets } from "../secret-input.ts";
import type { Terminal } from "../terminal.ts";

/** Where `uses: owner/name@ref` comes from when neither the option nor the environment says. */
const DEFAULT_ACTIONS_URL = "https://github.com";

export interface RunOptions {
  readonly job?: string;
  readonly includeUncommitted: boolean;
  readonly accelerator: "auto" | "kvm" | "tcg";
  readonly imageCache?: string;
  readonly runDir?: string;
  /** Where `uses: owner/name@ref` actions are fetched from (default https://github.com). */
  readonly actionsUrl?: string;
  /** Run through the fleet on this broker instead of in this process. */
  readonly amqp?: string;
  readonly namespace: string;
  readonly queueTimeoutSeconds: number;
  /** Through the fleet: an attempt silent this long is lost, cancelled and retried. */
  readonly leaseSeconds?: number;
  /** Through the fleet: attempts in all before a lost job fails. */
  readonly maxAttempts?: number;
  /** Secret names whose values are read from the environment. */
  readonly secret?: readonly string[];
  /** A file of NAME=VALUE secrets. */
  readonly secretsFile?: string;
  /** workflow_dispatch inputs as given, NAME → text. */
  readonly input?: Readonly<Record<string, string>>;
  /** The `vars` context. */
  readonly var?: Readonly<Record<string, string>>;
  /** `github.event_name`; workflow_dispatch when not given. */
  readonly event?: string;
  /** A JSON file holding `github.event`. */
  readonly eventPayload?: string;
  /** Jobs at once; default 1 in this process, unbounded (each matrix's max-parallel) through the fleet. */
  readonly parallel?: number;
  /** `runs-on` label → the label of the image that runs it here (`--map-label FROM=TO`). */
  readonly mapLabel?: Readonly<Record<string, string>>;
}

/**
 * `ciadm run`: runs a workflow's jobs, each in a fresh VM, as a forge would — a matrix as one job
 * per combination, `needs` as a graph with outputs passed on, each job's `if:`, fail-fast and
 * max-parallel — printing live output. With no broker it runs the orchestrator's executor in this
 * process (the embedded default); with `--amqp` it publishes the jobs to the fleet and follows
 * their events. Resolves to the exit code: 0 only if every job succeeded.
 */
export async function runWorkflow(
  givenPath: string | undefined,
  options: RunOptions,
  term: Terminal,
  log: Logger,
): Promise<number> {
  const workflowPath = givenPath ?? (await chooseWorkflow(term));
  const absolute = path.resolve(workflowPath);
  const repo = await readLocalRepository(path.dirname(absolute), {
    includeUncommitted: options.includeUncommitted,
  }).catch((error: unknown) => error as Error);
  const file = repo instanceof Error ? workflowPath : path.relative(repo.root, absolute);
  const workflow = await loadRunWorkflow(absolute, file, repo, options);
  const mapped = mapLabels(selectJobs(workflow, options.job), options.mapLabel ?? {});
  const jobs = mapped.jobs;
  for (const [from, to] of Object.entries(options.mapLabel ?? {})) {
    term.err(
      mapped.unused.includes(from)
        ? `note: --map-label ${from}=${to} applies to no job: none runs on ${from}\n`
        : `note: jobs for ${from} run on ${to} here (--map-label)\n`,
    );
  }
  const secretValues = await readSecrets(options.secret ?? [], options.secretsFile);
  const keyring = runKeyring(options.amqp !== undefined, Object.keys(secretValues).length > 0);
  if (repo instanceof Error && jobs.some((j) => j.steps.some((s) => s.kind === "checkout"))) throw repo;

  const runner: JobRunner = options.amqp
    ? await fleetJobRunner({
        amqpUrl: options.amqp,
        namespace: options.namespace,
        log,
        term,
        queueTimeoutMs: options.queueTimeoutSeconds * 1000,
        ...(options.leaseSeconds ? { leaseMs: options.leaseSeconds * 1000 } : {}),
        ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
      })
    : await localJobRunner({
        log,
        term,
        accelerator: options.accelerator,
        ...(options.imageCache ? { imageCache: options.imageCache } : {}),
        ...(options.runDir ? { runDir: options.runDir } : {}),
        actionsUrl: options.actionsUrl ?? DEFAULT_ACTIONS_URL,
        // Only actions use the job cache (actions/cache and the like).
        jobCache: jobs.some((j) => j.steps.some((s) => s.kind === "action")),
        ...(repo instanceof Error ? {} : { localCheckout: repo.checkout }),
        ...(keyring ? { keyring } : {}),
      });
  if (options.amqp && jobs.some((j) => j.steps.some((s) => s.kind === "checkout"))) {
    term.err(
      "note: through the fleet, checkout fetches the pushed commit from the repository's URL, not your working tree\n",
    );
  }

  const controller = new AbortController();
  const interrupt = () => {
    term.err("\nInterrupted: cancelling the running jobs and destroying their VMs…\n");
    controller.abort(new GracefulCancel("cancelled from the terminal (Ctrl-C)"));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);

  const concurrency = options.parallel ?? (options.amqp ? Number.POSITIVE_INFINITY : 1);
  // With jobs side by side, each line says which job it belongs to.
  const writerFor = (job: PlannedJob) =>
    concurrency > 1 && jobs.length > 1
      ? (text: string) => term.out(text.replace(/^(?=.)/gm, `[${job.name}] `))
      : (text: string) => term.out(text);
  const printed = new Map<PlannedJob, PrintedJob>();
  let finished: Map<PlannedJob, FinishedJob>;
  try {
    finished = await runGraph({
      jobs,
      contexts: workflow.contexts ?? {},
      concurrency,
      signal: controller.signal,
      async run(job, needs, signal) {
        const request = toJobRequest(workflow, job, {
          source: JobSource.MANUAL,
          owner: runner.owner,
          repository: repositoryOf(repo),
          actionsUrl: options.actionsUrl ?? DEFAULT_ACTIONS_URL,
          needs,
          ...(keyring ? { secrets: { values: secretValues, keyring } } : {}),
        });
        const missing = request.secrets.map((s) => s.name).filter((name) => !(name in secretValues));
        if (missing.length > 0) {
          term.err(`note: job ${job.name} reads secrets not given (empty, as on GitHub): ${missing.join(", ")}\n`);
        }
        const write = writerFor(job);
        write(term.bold(`\n━━ job ${job.name} (runs-on: ${job.runsOn}) ━━\n`));
        const printer = new JobPrinter(job.name, request.steps.length, write, {
          color: term.color,
          stepNames: request.steps.map((step) => step.name),
        });
        const result = await runner.run(request, printer, signal);
        printed.set(job, result);
        return { result: result.result, outputs: result.outputs ?? {} };
      },
      notRun(job, result, reason) {
        term.out(`\n⊘ job ${job.name} ${outcomeWord(result)}: ${reason}\n`);
        printed.set(job, { name: job.name, result, reason, steps: [], durationMs: 0 });
      },
      expand: (job, needs) => planAfterNeeds(workflow, job, needs),
    });
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
    await runner.close();
  }
  // In the workflow's order, a matrix made from needs' outputs where its job is.
  const ran = [...finished.keys()].sort(
    (a, b) =>
      jobs.findIndex((j) => j.key === a.key) - jobs.findIndex((j) => j.key === b.key) ||
      (a.strategy?.["job-index"] ?? 0) - (b.strategy?.["job-index"] ?? 0),
  );
  const results = ran.map((job) => printed.get(job)).filter((r): r is PrintedJob => r !== undefined);
  term.out(formatSummary(results));
  const succeeded = ran.every((job) => {
    const result = printed.get(job)?.result;
    // As on a forge: a job skipped by its if: does not fail the run; continue-on-error tolerates a failure.
    return (
      result === Outcome.SUCCESS || result === Outcome.SKIPPED || (job.continueOnError && result === Outcome.FAILURE)
    );
  });
  return succeeded ? 0 : 1;
}

/** The workflow to run when none is named, found from the top of the repository (or this directory). */
async function chooseWorkflow(term: Terminal): Promise<string> {
  const root = (await repositoryRoot(process.cwd())) ?? process.cwd();
  const file = path.relative(process.cwd(), path.join(root, await defaultWorkflow(root)));
  term.err(`running ${file}\n`);
  return file;
}

/**
 * Plans the workflow with the contexts of a manual run: the repository, the event, `--var`s, and
 * `--input`s checked against the inputs the workflow declares (which needs its `on:` first).
 */
async function loadRunWorkflow(absolute: string, file: string, repo: LocalRepository | Error, options: RunOptions) {
  const base = planContexts(repo, options.event);
  const vars = { ...options.var };
  const declared = await loadWorkflowFile(absolute, { file, contexts: { ...base, vars } });
  const inputs = resolveInputs(declared.on, options.input ?? {});
  const event = options.eventPayload
    ? await readEventPayload(options.eventPayload)
    : base.github.event_name === "workflow_dispatch"
      ? { inputs }
      : {};
  return loadWorkflowFile(absolute, {
    file,
    contexts: { ...base, github: { ...base.github, event, workflow: declared.name }, vars, inputs },
  });
}

async function readEventPayload(file: string): Promise<unknown> {
  const text = await readFile(file, "utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`--event-payload ${file} is not JSON: ${(error as Error).message}`);
  }
}

export /**
 * The keys that seal this run's secrets. In this process (the embedded default) a fresh key that
 * lives in memory only is enough; through the fleet the orchestrators must unseal, so the fleet's
 * keys are required as soon as there is a secret to send.
 */
function runKeyring(throughFleet: boolean, hasSecrets: boolean): FleetKeyring | undefined {
  if (!throughFleet) {
    return loadFleetKeyring() ?? new FleetKeyring([{ id: "ephemeral", key: randomBytes(32) }]);
  }
  return hasSecrets ? requireFleetKeyring("ciadm run --amqp with secrets") : loadFleetKeyring();
}

export function repositoryOf(repo: LocalRepository | Error) {
  if (repo instanceof Error) return { url: "", fullName: "local/workspace", commitSha: "", ref: "" };
  return { url: repo.url, fullName: repo.fullName, commitSha: repo.commitSha, ref: repo.ref };
}

export function planContexts(repo: LocalRepository | Error, eventName = "workflow_dispatch") {
  const r = repositoryOf(repo);
  return {
    github: {
      sha: r.commitSha,
      ref: r.ref,
      ref_name: r.ref.replace(/^refs\/(heads|tags)\//, ""),
      repository: r.fullName,
      repository_owner: r.fullName.split("/")[0] ?? "",
      event_name: eventName,
      run_id: String(Date.now()),
      run_number: "1",
      run_attempt: "1",
      actor: process.env.USER ?? "local",
      server_url: "",
    },
    runner: { os: "Linux", arch: "X64", temp: "/tmp" },
  };
}
