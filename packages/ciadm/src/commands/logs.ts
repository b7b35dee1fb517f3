import type { JobEvent } from "@solstice/protocol";
import type { Command } from "commander";
import type { Logger } from "pino";
import { CliError, type FleetOptions, openStore, withBus, withFleetOptions } from "../fleet-access.ts";
import { JobPrinter, outcomeWord } from "../job-printer.ts";
import type { Terminal } from "../terminal.ts";

/**
 * `ciadm logs ID --follow`: a running job's output, live, from its events (a temporary queue bound
 * to `*.<job id>`), printed as `ciadm run` prints it. Finished jobs' logs are in the forge: we keep
 * none.
 */
export function registerLogs(program: Command, term: Terminal, logger: () => Logger): void {
  withFleetOptions(
    program
      .command("logs")
      .description("follow a job's live output until it finishes")
      .argument("<job>", "the job id")
      .option("-f, --follow", "follow the live output (the only mode: finished jobs' logs are in the forge)", false)
      .option("--timeout <seconds>", "stop following after this long", Number, 3600),
    { bus: true, db: true },
  ).action(async (jobId: string, opts: FleetOptions & { follow: boolean; timeout: number }) => {
    if (!opts.follow) {
      throw new CliError(
        "logs_not_kept",
        "Solstice keeps no logs: a finished job's output is in the forge",
        `follow a running job live with \`ciadm logs ${jobId} --follow\``,
      );
    }
    let name = jobId;
    let stepNames: string[] = [];
    if (opts.databaseUrl) {
      const db = await openStore(opts, logger());
      try {
        const job = await db.store.getJob(jobId).catch(() => undefined);
        if (job && job.state !== "queued" && job.state !== "running") {
          throw new CliError(
            "job_finished",
            `job ${jobId} already ${job.state}; its log is in the forge`,
            `see \`ciadm job show ${jobId}\``,
          );
        }
        name = job?.jobName ?? jobId;
        stepNames = job?.steps.map((step) => step.name) ?? [];
      } finally {
        await db.close();
      }
    }
    const result = await withBus(opts, logger(), async (bus) => {
      let done: ((text: string) => void) | undefined;
      const finished = new Promise<string>((resolve) => {
        done = resolve;
      });
      const printer = new JobPrinter(name, stepNames.length, (text) => term.out(text), {
        color: term.color,
        joinMidway: true,
        stepNames,
      });
      const follower = await bus.consumeEvents({
        jobId,
        onEvent: async (event: JobEvent) => {
          const printed = printer.handle(event);
          if (printed) done?.(`${outcomeWord(printed.result)}${printed.reason ? `: ${printed.reason}` : ""}`);
        },
      });
      term.err(`following job ${jobId} (Ctrl-C stops following, not the job)\n`);
      const timer = setTimeout(
        () => done?.(`still running after ${opts.timeout} s; stopped following`),
        opts.timeout * 1000,
      );
      const interrupt = () => done?.("stopped following");
      process.once("SIGINT", interrupt);
      try {
        return await finished;
      } finally {
        clearTimeout(timer);
        process.off("SIGINT", interrupt);
        await follower.stop();
      }
    });
    term.out(`job ${name}: ${result}\n`);
  });
}
