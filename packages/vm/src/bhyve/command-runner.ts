import { runCommand } from "../run-command.ts";

/**
 * The seam between the bhyve backend and the illumos host: every zfs, dladm, zonecfg, zoneadm and
 * mkisofs call goes through it, so tests replay recorded expectations instead of a real host.
 */
export interface CommandRunner {
  run(file: string, args: readonly string[], opts: { signal?: AbortSignal }): Promise<{ stdout: string }>;
}

/** Runs the commands on this host, each with a deadline (zoneadm install copies nothing: a clone). */
export function hostCommandRunner(timeoutMs = 120_000): CommandRunner {
  return {
    run: (file, args, opts) => runCommand(file, args, { timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) }),
  };
}
