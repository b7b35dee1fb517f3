import { isDeepStrictEqual } from "node:util";

/** One value per matrix key: what `matrix.<key>` is in one job of the matrix. */
export type MatrixCombination = Record<string, unknown>;

/** `strategy.matrix` once its expressions are evaluated. */
export interface MatrixSpec {
  /** The matrix's own keys, in the order written, each with its list of values. */
  readonly dimensions: ReadonlyArray<readonly [string, readonly unknown[]]>;
  readonly include: readonly MatrixCombination[];
  readonly exclude: readonly MatrixCombination[];
}

/** As on GitHub, one matrix makes at most 256 jobs. */
export const MAX_MATRIX_JOBS = 256;

/**
 * Expands a matrix the way GitHub documents it
 * (https://docs.github.com/actions/using-jobs/using-a-matrix-for-your-jobs):
 * the product of the dimensions, the first key varying slowest; then `exclude` removes every
 * combination that matches one of its entries on all of that entry's keys; then each `include`
 * entry is merged into every remaining original combination whose original values it does not
 * change (values added by an earlier include may be overwritten), and becomes a combination of
 * its own when it fits none.
 */
export function expandMatrix(spec: MatrixSpec): MatrixCombination[] {
  let product: MatrixCombination[] = spec.dimensions.length === 0 ? [] : [{}];
  for (const [key, values] of spec.dimensions) {
    product = product.flatMap((combination) => values.map((value) => ({ ...combination, [key]: value })));
  }
  const kept = product.filter((combination) => !spec.exclude.some((entry) => matches(combination, entry)));
  const originals = kept.map((combination) => ({ ...combination }));
  const extra: MatrixCombination[] = [];
  for (const entry of spec.include) {
    let merged = false;
    originals.forEach((original, i) => {
      const changesOriginal = Object.entries(entry).some(
        ([key, value]) => key in original && !isDeepStrictEqual(original[key], value),
      );
      if (changesOriginal) return;
      Object.assign(kept[i] as MatrixCombination, entry);
      merged = true;
    });
    if (!merged) extra.push({ ...entry });
  }
  return [...kept, ...extra];
}

function matches(combination: MatrixCombination, entry: MatrixCombination): boolean {
  return Object.entries(entry).every(([key, value]) => isDeepStrictEqual(combination[key], value));
}

/** The `strategy` context of one job of a matrix (or of a job without one: a matrix of one). */
export interface StrategyContext {
  readonly "fail-fast": boolean;
  readonly "job-index": number;
  readonly "job-total": number;
  readonly "max-parallel": number;
}

/**
 * GitHub's default job name in a matrix: the name followed by the combination's values. A forge
 * that expanded the matrix itself sends a one-combination job already named so: kept as it is.
 */
export function matrixJobName(name: string, combination: MatrixCombination): string {
  const values = Object.values(combination).map((value) =>
    typeof value === "object" && value !== null ? JSON.stringify(value) : String(value),
  );
  const suffix = ` (${values.join(", ")})`;
  return values.length === 0 || name.endsWith(suffix) ? name : `${name}${suffix}`;
}
