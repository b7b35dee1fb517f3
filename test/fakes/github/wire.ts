// The fake reads request bodies as GitHub's services do (Newtonsoft's defaults): property names
// case-insensitively, enums as names in any case or as numbers. Written apart from the client's
// own reader so that the two cannot share one misunderstanding.

export type Json = Record<string, unknown>;

export function field(obj: unknown, name: string): unknown {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return undefined;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(obj)) if (key.toLowerCase() === wanted) return value;
  return undefined;
}

export function text(obj: unknown, name: string): string | undefined {
  const value = field(obj, name);
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

export function integer(obj: unknown, name: string): number | undefined {
  const value = field(obj, name);
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) ? n : undefined;
}

export function array(obj: unknown, name: string): unknown[] {
  const value = field(obj, name);
  return Array.isArray(value) ? value : [];
}

/** An enum value given as a name (any case) or a number, as the index of `names`. */
export function enumName(value: unknown, names: readonly string[]): string | undefined {
  if (typeof value === "number") return names[value];
  if (typeof value === "string") {
    const found = names.find((n) => n.toLowerCase() === value.toLowerCase());
    if (found) return found;
    if (/^\d+$/.test(value)) return names[Number(value)];
  }
  return undefined;
}

/** TimelineRecordState (Pending=0, InProgress=1, Completed=2) and TaskResult (Succeeded=0 … Abandoned=5). */
export const RECORD_STATES = ["pending", "inProgress", "completed"] as const;
export const TASK_RESULTS = ["succeeded", "succeededWithIssues", "failed", "canceled", "skipped", "abandoned"] as const;
