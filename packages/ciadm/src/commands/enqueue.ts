import path from "node:path";
import { jobDetailsOf } from "@solstice/db";
import { JobSource } from "@solstice/protocol";
import { loadWorkflowFile, selectJobs, toJobRequest } from "@solstice/workflow";
import { type Command, Option } from "commander";
import type { Logger } from "pino";
import { type FleetOptions, openStore, withBus, withFleetOptions } from "../fleet-access.ts";
import { readLocalRepository } from "../local-checkout.ts";
import type { Terminal } from "../terminal.ts";
import { planContexts, repositoryOf, runWorkflow } from "./run.ts";

/** The owner of detached jobs: nobody follows its events queue; `ciadm logs --follow` still can. */
export const DETACHED_OWNER = "detached";

interface EnqueueOptions extends FleetOptions {
  job?: string;
  detach: boolean;
  queueTimeout: number;
}

/**
 * `ciadm enqueue`: a manual job on the fleet. Attached, this process owns it (follows it, retries a
 * lost attempt, cancels it on Ctrl-C) exactly as `ciadm run --amqp`; `--detach` publishes it with
 * no owner and returns: no retry, its outcome is in PostgreSQL.
 */
export function registerEnqueue(program: Command, term: Terminal, logger: () => Logger): void {
  withFleetOptions(
    program
      .command("enqueue")
      .description("publish a workflow's job(s) to the fleet as manual jobs")
      .argument("<workflow>", "the workflow file")
      .option("--job <id>", "only this job (its key under `jobs:`)")
      .option("--detach", "publish with no owner and return at once, printing the job ids", false)
      .addOption(
        new Option("--queue-timeout <seconds>", "attached: give up on a job no host takes")
          .default(600)
          .argParser(Number),
      ),
    { bus: true, db: true },
  ).action(async (workflowPath: string, opts: EnqueueOptions) => {
    if (!opts.detach) {
      process.exitCode = await runWorkflow(
        workflowPath,
        {
          ...(opts.job ? { job: opts.job } : {}),
          includeUncommitted: false,
          accelerator: "auto",
          ...(opts.amqp ? { amqp: opts.amqp } : {}),
          namespace: opts.namespace,
          queueTimeoutSeconds: opts.queueTimeout,
        },
        term,
        logger(),
      );
      return;
    }
    const log = logger();
    const absolute = path.resolve(workflowPath);
    const repo = await readLocalRepository(path.dirname(absolute), { includeUncommitted: false }).catch(
      (error: unknown) => error as Error,
    );
    const file = repo instanceof Error ? workflowPath : path.relative(repo.root, absolute);
    const workflow = await loadWorkflowFile(absolute, { file, contexts: planContexts(repo) });
    const requests = selectJobs(workflow, opts.job).map((job) =>
      toJobRequest(workflow, job, { source: JobSource.MANUAL, owner: DETACHED_OWNER, repository: repositoryOf(repo) }),
    );
    // Recorded queued first, as a runner does, so `ciadm jobs` shows it before a host takes it.
    const db = opts.databaseUrl ? await openStore(opts, log) : undefined;
    try {
      await withBus(opts, log, async (bus) => {
        for (const request of requests) {
          await db?.store.recordQueued({ jobId: request.jobId, attempt: request.attempt, ...jobDetailsOf(request) });
          await bus.publishJob(request);
          term.out(`${request.jobId}  ${request.jobName} (runs-on: ${request.runsOn})\n`);
        }
      });
    } finally {
      await db?.close();
    }
    term.err("detached: follow with `ciadm logs <id> --follow`, see the outcome with `ciadm job show <id>`\n");
  });
}
