import { randomBytes } from "node:crypto";
import path from "node:path";
import { FleetKeyring, JobSource, loadFleetKeyring, Outcome, requireFleetKeyring } from "@solstice/protocol";
import { loadWorkflowFile, selectJobs, toJobRequest } from "@solstice/workflow";
import type { Logger } from "pino";
import { orderByNeeds } from "../job-order.ts";
import { formatSummary, JobPrinter, type PrintedJob } from "../job-printer.ts";
import { fleetJobRunner, type JobRunner, localJobRunner } from "../job-runners.ts";
import { type LocalRepository, readLocalRepository } from "../local-checkout.ts";
import { readSecrets } from "../secret-input.ts";
import type { Terminal } from "../terminal.ts";

export interface RunOptions {
  readonly job?: string;
  readonly includeUncommitted: boolean;
  readonly accelerator: "auto" | "kvm" | "tcg";
  readonly imageCache?: string;
  readonly runDir?: string;
  /** Run through the fleet on this broker instead of in this process. */
  readonly amqp?: string;
  readonly namespace: string;
  readonly queueTimeoutSeconds: number;
  /** Secret names whose values are read from the environment. */
  readonly secret?: readonly string[];
  /** A file of NAME=VALUE secrets. */
  readonly secretsFile?: string;
}

/**
 * `ciadm run`: runs a workflow's jobs, each in a fresh VM, in `needs` order, printing live
 * output. With no broker it runs the orchestrator's executor in this process (the embedded
 * default); with `--amqp` it publishes the jobs to the fleet and follows their events. Resolves
 * to the exit code: 0 only if every job succeeded.
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
      })
    : await localJobRunner({
        log,
        term,
        accelerator: options.accelerator,
        ...(options.imageCache ? { imageCache: options.imageCache } : {}),
        ...(options.runDir ? { runDir: options.runDir } : {}),
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
        owner: runner.owner,
        repository: repositoryOf(repo),
        ...(keyring ? { secrets: { values: secretValues, keyring } } : {}),
      });
      const missing = request.secrets.map((s) => s.name).filter((name) => !(name in secretValues));
      if (missing.length > 0) {
        term.err(`note: job ${job.name} reads secrets not given (empty, as on GitHub): ${missing.join(", ")}\n`);
      }
      term.out(term.bold(`\n━━ job ${job.name} (runs-on: ${job.runsOn}) ━━\n`));
      const printer = new JobPrinter(job.name, request.steps.length, (text) => term.out(text), { color: term.color });
      const printed = await runner.run(request, printer, controller.signal);
      outcomes.set(job.key, printed.result);
      results.push(printed);
    }
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
    await runner.close();
  }
  term.out(formatSummary(results));
  return results.every((r) => r.result === Outcome.SUCCESS) ? 0 : 1;
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

export function planContexts(repo: LocalRepository | Error) {
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
