import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { VmError } from "./errors.ts";
import { isSameProcessAlive, processStartTicks } from "./process-identity.ts";

/** What `vm.json` in a run directory records, so a later start-up can tell whether it is orphaned. */
export interface RunRecord {
  vmName: string;
  /**
   * The machine whose processes the pids name. Run roots may be shared between machines (one disk),
   * where a pid means nothing: only the machine that wrote a record may judge it orphaned.
   */
  machine?: string;
  ownerPid: number;
  ownerStartTicks?: string;
  qemuPid?: number;
  qemuStartTicks?: string;
  pastaPid?: number;
  pastaStartTicks?: string;
  sshPort?: number;
}

const RECORD = "vm.json";
/** Longest unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;
/** A run directory with no record yet is only an orphan once it is older than this (its boot may be starting). */
const UNRECORDED_GRACE_MS = 60_000;

/** Creates `<runRoot>/<vmName>-<shortId>` (mode 0700) with its record naming this process as owner. */
export async function createRunDir(runRoot: string, vmName: string, shortId: string): Promise<string> {
  await mkdir(runRoot, { recursive: true, mode: 0o700 });
  // The QMP socket (`<dir>/qmp.sock`) must stay under the 108-byte unix socket path limit.
  const room = Math.min(40, MAX_SOCKET_PATH - runRoot.length - `/-${shortId}/qmp.sock`.length);
  if (room < 1) {
    throw new VmError("boot_failed", `run directory root ${runRoot} is too long for a QMP socket path`, {
      hint: "set a shorter runRoot (SOLSTICE_RUN_DIR)",
    });
  }
  const safeName = vmName.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, room);
  const dir = join(runRoot, `${safeName}-${shortId}`);
  await mkdir(dir, { mode: 0o700 });
  await writeRunRecord(dir, { vmName, ownerPid: process.pid, ownerStartTicks: ownTicks() });
  return dir;
}

export async function writeRunRecord(dir: string, record: RunRecord): Promise<void> {
  const tmp = join(dir, `${RECORD}.tmp`);
  await writeFile(tmp, `${JSON.stringify({ machine: hostname(), ...record })}\n`, { mode: 0o600 });
  await rename(tmp, join(dir, RECORD));
}

/**
 * Removes every run directory of this machine whose owning process is gone, killing the QEMU and
 * pasta processes it recorded if they still run. Returns how many directories were removed. Any
 * process sharing the run root may call it (orchestrators do, periodically), so a dead host's
 * leftovers, its seeds included, go without waiting for that host to start again.
 */
export async function reapRunDirs(runRoot: string, log: Logger): Promise<number> {
  let entries: string[];
  try {
    entries = await readdir(runRoot);
  } catch {
    return 0;
  }
  let reaped = 0;
  for (const entry of entries) {
    const dir = join(runRoot, entry);
    const record = await readRecord(dir);
    if (record?.machine !== undefined && record.machine !== hostname()) continue;
    if (record === undefined) {
      const age = await stat(dir).then(
        (s) => (s.isDirectory() ? Date.now() - s.mtimeMs : -1),
        () => -1,
      );
      if (age < UNRECORDED_GRACE_MS) continue;
    } else if (isSameProcessAlive(record.ownerPid, record.ownerStartTicks)) {
      continue;
    } else {
      killRecorded(record.qemuPid, record.qemuStartTicks);
      killRecorded(record.pastaPid, record.pastaStartTicks);
    }
    await rm(dir, { recursive: true, force: true });
    log.info({ runDir: dir, vmName: record?.vmName }, "removed an orphaned VM run directory");
    reaped++;
  }
  return reaped;
}

function killRecorded(pid: number | undefined, startTicks: string | undefined): void {
  if (pid === undefined || !isSameProcessAlive(pid, startTicks)) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Exited between the check and the kill.
  }
}

async function readRecord(dir: string): Promise<RunRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, RECORD), "utf8")) as RunRecord;
  } catch {
    return undefined;
  }
}

function ownTicks(): string | undefined {
  return processStartTicks(process.pid);
}
