import { ControlSchema, create, SCHEMA_VERSION } from "@solstice/protocol";
import type { Command } from "commander";
import type { Logger } from "pino";
import { type FleetOptions, withBus, withFleetOptions } from "../fleet-access.ts";
import type { Terminal } from "../terminal.ts";

/** `ciadm debug end`: ends a failed job's debug SSH session before its time is up. */
export function registerDebug(program: Command, term: Terminal, logger: () => Logger): void {
  const debug = program.command("debug").description("failed jobs' VMs kept for debug SSH");
  withFleetOptions(
    debug
      .command("end")
      .description("destroy the VM kept for debugging a failed job, now")
      .argument("<job>", "the job id (printed in the job's log with the connection details)"),
    { bus: true },
  ).action(async (jobId: string, opts: FleetOptions) => {
    // The orchestrator that keeps the VM takes a Cancel for a finished job as the end of its debug session.
    await withBus(opts, logger(), (bus) =>
      bus.publishControl(
        create(ControlSchema, {
          schemaVersion: SCHEMA_VERSION,
          command: {
            case: "cancel",
            value: { jobId, attempt: 0, reason: `debug session ended by ${process.env.USER ?? "an operator"}` },
          },
        }),
      ),
    );
    term.out(`end sent for the debug VM of job ${jobId}\n`);
  });
}
