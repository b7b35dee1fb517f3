import type { JobEvent } from "@solstice/protocol";

/**
 * How the end-to-end and conformance tests get their VMs, from SOLSTICE_TEST_START_MODE:
 * - `cold` (default): a fresh VM booted per job, on the `tiny` label;
 * - `warm`: a VM booted ahead of the job and handed over (warm pool), on `tiny`;
 * - `restore`: a VM restored from the saved idle guest, on `tiny-fast` (the image with a snapshot).
 * scripts/test.sh runs those suites once more in each of the other two modes.
 * SOLSTICE_TEST_LABEL names another label, in any mode (scripts/test.sh: the run-step cases on
 * tiny-arm64, a guest of another architecture; the restore mode needs an image with a snapshot, such
 * as debian-12-fast, or its jobs fail the start-mode check).
 */
export type StartMode = "cold" | "warm" | "restore";

function readStartMode(): StartMode {
  const value = process.env.SOLSTICE_TEST_START_MODE ?? "cold";
  if (value === "cold" || value === "warm" || value === "restore") return value;
  throw new Error(`SOLSTICE_TEST_START_MODE must be cold, warm or restore, not "${value}"`);
}

export const START_MODE: StartMode = readStartMode();

function readTestLabel(): string {
  return process.env.SOLSTICE_TEST_LABEL ?? (START_MODE === "restore" ? "tiny-fast" : "tiny");
}

/** The label the tests' jobs run on: `tiny`, `tiny-fast` when restoring snapshots, or SOLSTICE_TEST_LABEL. */
export const TEST_LABEL = readTestLabel();

/**
 * Whether the tests' backends restore images that have a snapshot: not in the cold mode, so a cold
 * run on such an image (debian-12-fast, tiny-fast) boots it.
 */
export const RESTORES_SNAPSHOTS = START_MODE !== "cold";

/** For test titles: which start mode ran. */
export const START_MODE_TITLE = `start: ${START_MODE}`;

/** The system line a job's log has when its VM came the mode's way (none for a cold boot). */
const MODE_LINE: Record<StartMode, RegExp | undefined> = {
  cold: undefined,
  warm: /^Using a warm VM from the pool/,
  restore: /restored from a snapshot\)$/,
};

/**
 * Throws unless the job's VM started in the test run's mode, so a mode that fell back to a cold
 * boot cannot pass unnoticed. `text` is the job's log, one line per entry.
 */
export function assertStartedInMode(lines: readonly string[]): void {
  const restore = MODE_LINE.restore;
  if (START_MODE === "cold" && restore && lines.some((line) => restore.test(line))) {
    throw new Error("the job did not start in mode cold: its VM was restored from a snapshot");
  }
  const expected = MODE_LINE[START_MODE];
  if (expected && !lines.some((line) => expected.test(line))) {
    throw new Error(`the job did not start in mode ${START_MODE}: no log line matches ${expected}`);
  }
}

/** The log lines of a job's events. */
export function logLines(events: readonly JobEvent[]): string[] {
  return events.flatMap(({ body }) => (body.case === "log" ? body.value.lines.map((l) => l.text) : []));
}
