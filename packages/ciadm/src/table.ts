/**
 * A plain-text table for people: a header, columns padded to their widest cell. Machine readers
 * use `--json` instead, so this never needs to be parsed.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join("\n")}\n`;
}

/** "12 s ago", "3 min ago": how long ago `at` was, relative to `now`. */
export function ago(at: Date, now: Date = new Date()): string {
  const seconds = Math.max(0, Math.round((now.getTime() - at.getTime()) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

/** A duration between two times, or since `from` while still running. */
export function duration(from: Date | null, to: Date | null, now: Date = new Date()): string {
  if (!from) return "";
  const ms = (to ?? now).getTime() - from.getTime();
  return `${(ms / 1000).toFixed(1)} s`;
}
