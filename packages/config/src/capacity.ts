import { z } from "zod";

/**
 * Parses "label=count,label=count" (e.g. `tiny=2,debian-12=1`) into a map. Labels are what jobs
 * ask for in `runs-on`; they become queue names, so they are restricted to a safe alphabet.
 */
export const capacitySchema = z
  .string()
  .trim()
  .min(1, "needs at least one label=count pair, e.g. tiny=2")
  .transform((text, ctx) => {
    const capacity: Record<string, number> = {};
    for (const part of text.split(",")) {
      const match = /^\s*([a-z0-9][a-z0-9._-]*)\s*=\s*(\d+)\s*$/i.exec(part);
      if (!match?.[1] || !match[2] || Number(match[2]) < 1) {
        ctx.addIssue({ code: "custom", message: `"${part.trim()}" is not label=count with count ≥ 1 (e.g. tiny=2)` });
        return z.NEVER;
      }
      capacity[match[1]] = Number(match[2]);
    }
    return capacity;
  });
