import type { DebugSessionRecord } from "@solstice/db";
import { ControlSchema, create, SCHEMA_VERSION } from "@solstice/protocol";
import type { Command } from "commander";
import type { Logger } from "pino";
import { type FleetOptions, withBus, withFleetOptions, withStore } from "../fleet-access.ts";
import { formatTable } from "../table.ts";
import type { Terminal } from "../terminal.ts";

/** `ciadm debug list` and `ciadm debug end`: failed jobs' VMs kept for debug SSH. */
export function registerDebug(program: Command, term: Terminal, logger: () => Logger): void {
  const debug = program.command("debug").description("failed jobs' VMs kept for debug SSH");
  withFleetOptions(
    debug
      .command("list")
      .description("the kept VMs: job, repository, who may connect, how, and until when")
      .option("--json", "machine-readable output", false),
    { db: true },
  ).action(async (opts: FleetOptions & { json: boolean }) => {
    const now = new Date();
    const sessions = await withStore(opts, logger(), (store) => store.listDebugSessions(now));
    if (opts.json) {
      term.out(
        `${JSON.stringify(
          sessions.map((s) => toJson(s, now)),
          null,
          2,
        )}\n`,
      );
      return;
    }
    if (sessions.length === 0) {
      term.out("no debug VMs kept (a failed job asks for one with env SOLSTICE_DEBUG_SSH: true)\n");
      return;
    }
    term.out(
      formatTable(
        ["JOB", "REPOSITORY", "LABEL", "HOST", "WHO MAY CONNECT", "CONNECT WITH", "EXPIRES", "LEFT"],
        sessions.map((s) => [
          s.jobId,
          s.repository || "-",
          s.label,
          s.hostId,
          whoMayConnect(s.allowed),
          connectCommand(s),
          s.expiresAt.toISOString(),
          timeLeft(s.expiresAt, now),
        ]),
      ),
    );
  });
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

function connectCommand(s: DebugSessionRecord): string {
  return `ssh -J ${s.sshHost} -p ${s.sshPort} ${s.sshUser}@127.0.0.1`;
}

/** "alice (forge) ×2, operator ×1": each holder once, with how many keys they have. */
function whoMayConnect(allowed: DebugSessionRecord["allowed"]): string {
  const counts = new Map<string, number>();
  for (const { who } of allowed) counts.set(who, (counts.get(who) ?? 0) + 1);
  return [...counts].map(([who, n]) => `${who} ×${n}`).join(", ");
}

function timeLeft(expiresAt: Date, now: Date): string {
  const seconds = Math.max(0, Math.round((expiresAt.getTime() - now.getTime()) / 1000));
  return seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
}

function toJson(s: DebugSessionRecord, now: Date) {
  return {
    jobId: s.jobId,
    repository: s.repository,
    label: s.label,
    host: s.hostId,
    connect: {
      command: connectCommand(s),
      jumpHost: s.sshHost,
      port: s.sshPort,
      user: s.sshUser,
      hostKeyFingerprint: s.hostKeyFingerprint,
    },
    allowed: s.allowed,
    createdAt: s.createdAt.toISOString(),
    expiresAt: s.expiresAt.toISOString(),
    secondsLeft: Math.max(0, Math.round((s.expiresAt.getTime() - now.getTime()) / 1000)),
  };
}
