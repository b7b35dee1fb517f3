import { readdirSync, readFileSync } from "node:fs";
import type pg from "pg";

/** Linux's clock ticks a second (`getconf CLK_TCK`), the unit of utime and stime in /proc. */
const TICKS_PER_SECOND = 100;

/** CPU seconds (utime + stime) of one process, 0 if it is gone. */
function processSeconds(pid: number | string): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0; // A process that ended while we looked.
  }
}

/**
 * CPU seconds and RSS of the cluster's nodes: every beam.smp that boots RabbitMQ and whose command
 * line names `clusterDir`. Not the short-lived Erlang VMs of rabbitmqctl, which name it too: one
 * that ended between two readings would take its CPU off the second (negative idle cores).
 */
export function brokerUsage(clusterDir: string): { seconds: number; rssKiB: number } {
  let seconds = 0;
  let rssKiB = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmdline.includes("beam.smp") || !cmdline.includes(clusterDir) || !cmdline.includes("rabbit\0boot")) continue;
      seconds += processSeconds(pid);
      rssKiB += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      // Gone.
    }
  }
  return { seconds, rssKiB };
}

/** CPU seconds of the given processes together. */
export function processesSeconds(pids: readonly (number | undefined)[]): number {
  return pids.reduce<number>((sum, pid) => sum + (pid === undefined ? 0 : processSeconds(pid)), 0);
}

/** Busy and total CPU seconds of the whole machine, all cores (/proc/stat's first line). */
export function machineSeconds(): { busy: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

/**
 * CPU seconds of the PostgreSQL backends serving connections named `applicationName`, by pid: the
 * server's share of one client's work, apart from the other databases on the same server.
 * (Readable from /proc when the bench runs as root or as the server's user.)
 */
export async function postgresBackendSeconds(client: pg.Client, applicationName: string): Promise<Map<number, number>> {
  const { rows } = await client.query<{ pid: number }>("select pid from pg_stat_activity where application_name = $1", [
    applicationName,
  ]);
  return new Map(rows.map((r) => [r.pid, processSeconds(r.pid)]));
}

/** CPU seconds spent by backends between two readings; one first seen later counts from 0. */
export function backendSecondsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let seconds = 0;
  for (const [pid, now] of after) seconds += now - (before.get(pid) ?? 0);
  return seconds;
}
