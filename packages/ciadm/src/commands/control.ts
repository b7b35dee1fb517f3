import type { Bus } from "@solstice/bus";
import type { JobStore } from "@solstice/db";
import { ControlSchema, create, SCHEMA_VERSION } from "@solstice/protocol";
import type { Command } from "commander";
import type { Logger } from "pino";
import { CliError, type FleetOptions, withBus, withBusAndStore, withFleetOptions } from "../fleet-access.ts";
import type { Terminal } from "../terminal.ts";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

/** `ciadm cancel`, `drain` and `undrain`: commands to the fleet over the control exchange. */
export function registerControl(program: Command, term: Terminal, logger: () => Logger): void {
  withFleetOptions(
    program
      .command("cancel")
      .description("stop a job wherever it runs: its step stops, its VM is destroyed, it ends cancelled")
      .argument("<job>", "the job id")
      .option(
        "--reason <text>",
        "why, shown in the job's log",
        `cancelled with ciadm by ${process.env.USER ?? "an operator"}`,
      )
      .option("--wait <seconds>", "with a database: wait this long for the job to end (0: do not wait)", Number, 30),
    { bus: true, db: true },
  ).action(async (jobId: string, opts: FleetOptions & { reason: string; wait: number }) => {
    const send = (bus: Bus) =>
      bus.publishControl(
        create(ControlSchema, {
          schemaVersion: SCHEMA_VERSION,
          command: { case: "cancel", value: { jobId, attempt: 0, reason: opts.reason } },
        }),
      );
    if (!opts.databaseUrl || opts.wait <= 0) {
      await withBus(opts, logger(), send);
      term.out(`cancel sent for job ${jobId}\n`);
      return;
    }
    const state = await withBusAndStore(opts, logger(), async (bus, store) => {
      const job = await store.getJob(jobId).catch(() => undefined);
      if (!job) throw new CliError("unknown_job", `no job ${jobId}`, "list jobs with `ciadm jobs`");
      if (FINISHED.has(job.state)) return `already ${job.state}`;
      await send(bus);
      // No host holds a queued job to hear the cancel; ending its row makes whichever host takes
      // it later drop the delivery (it cannot claim a finished job).
      if (job.state === "queued")
        await store.finishJob(jobId, job.attempt, { state: "cancelled", reason: opts.reason }, new Date());
      return waitForEnd(store, jobId, opts.wait * 1000);
    });
    term.out(`job ${jobId}: ${state}\n`);
  });

  for (const [name, drain] of [
    ["drain", true],
    ["undrain", false],
  ] as const) {
    withFleetOptions(
      program
        .command(name)
        .description(
          drain ? "stop a host taking new jobs; its running jobs finish" : "let a drained host take jobs again",
        )
        .argument("<host>", "the host id, as `ciadm hosts` shows it"),
      { bus: true, db: true },
    ).action(async (host: string, opts: FleetOptions) => {
      await withBusAndStore(opts, logger(), async (bus, store) => {
        // The flag is what a restarting host reads; the broadcast is what a running host hears.
        if (!(await store.setDraining(host, drain))) {
          const known = (await store.listHosts()).map((h) => h.id);
          throw new CliError("unknown_host", `no host "${host}"`, `known hosts: ${known.join(", ") || "(none)"}`);
        }
        await bus.publishControl(
          create(ControlSchema, {
            schemaVersion: SCHEMA_VERSION,
            command: drain ? { case: "drain", value: { host } } : { case: "undrain", value: { host } },
          }),
        );
      });
      term.out(
        drain ? `host ${host} is draining: no new jobs; running jobs finish\n` : `host ${host} takes jobs again\n`,
      );
    });
  }
}

async function waitForEnd(store: JobStore, jobId: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await store.getJob(jobId);
    if (job && FINISHED.has(job.state)) return job.state;
    if (Date.now() >= deadline) {
      return `cancel sent; still ${job?.state ?? "unknown"} after ${Math.round(timeoutMs / 1000)} s (queued jobs end when a host takes them)`;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
