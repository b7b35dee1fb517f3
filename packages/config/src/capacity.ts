import { z } from "zod";

/**
 * Parses "label=count,label=count" into a map, counts at least `min`. Labels are what jobs ask for
 * in `runs-on`; they become queue names, so they are restricted to a safe alphabet.
 */
function labelCountsSchema(opts: { min: number; example: string; allowEmpty: boolean }) {
  return z
    .string()
    .trim()
    .refine((text) => opts.allowEmpty || text !== "", `needs at least one label=count pair, e.g. ${opts.example}`)
    .transform((text, ctx) => {
      const counts: Record<string, number> = {};
      for (const part of text === "" ? [] : text.split(",")) {
        const match = /^\s*([a-z0-9][a-z0-9._-]*)\s*=\s*(\d+)\s*$/i.exec(part);
        if (!match?.[1] || !match[2] || Number(match[2]) < opts.min) {
          ctx.addIssue({
            code: "custom",
            message: `"${part.trim()}" is not label=count with count ≥ ${opts.min} (e.g. ${opts.example})`,
          });
          return z.NEVER;
        }
        counts[match[1]] = Number(match[2]);
      }
      return counts;
    });
}

/** Labels served and slots per label, e.g. `tiny=2,debian-12=1`. */
export const capacitySchema = labelCountsSchema({ min: 1, example: "tiny=2", allowEmpty: false });

/**
 * VMs kept booted and idle per label, e.g. `tiny=1,debian-12=0` (default: none). Labels with 0 have
 * no pool; each pooled VM holds one of its label's slots.
 */
export const warmPoolSchema = labelCountsSchema({ min: 0, example: "tiny=1", allowEmpty: true })
  .default({})
  .transform((counts) => Object.fromEntries(Object.entries(counts).filter(([, count]) => count > 0)));
