import { readFileSync } from "node:fs";

/**
 * The start time (clock ticks since boot) of a live process, or undefined when it is gone. A pid
 * together with its start time names one process even after the pid is reused.
 */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; starttime is field 22 overall.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // A zombie has exited; it only waits for its parent to collect it.
    if (fields[0] === "Z") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** True when the process recorded as (pid, startTicks) is still running. */
export function isSameProcessAlive(pid: number, startTicks: string | undefined): boolean {
  const now = processStartTicks(pid);
  return now !== undefined && (startTicks === undefined || now === startTicks);
}
