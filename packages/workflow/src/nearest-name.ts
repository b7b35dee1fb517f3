/**
 * The candidate that `name` most likely misspells, or undefined when none is close enough to be a
 * typo. Case, `_` for `-` and a cut-off end (`timeout` for `timeout-minutes`) count as typos;
 * otherwise the edit distance (adjacent swaps count once) must be small for the name's length, so
 * that a suggestion is a likely fix rather than any word.
 */
export function nearestName(name: string, candidates: readonly string[]): string | undefined {
  const wanted = normalize(name);
  if (wanted === "") return undefined;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const known = normalize(candidate);
    if (known === wanted) return candidate;
    const distance =
      wanted.length >= 4 && known.startsWith(wanted) ? 1 : editDistance(wanted, known, maxTypos(wanted.length));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= maxTypos(wanted.length) ? best : undefined;
}

function normalize(name: string): string {
  return name.trim().toLowerCase().replaceAll("_", "-");
}

function maxTypos(length: number): number {
  return length <= 3 ? 1 : length <= 7 ? 2 : 3;
}

/**
 * Optimal string alignment distance between `a` and `b`; any result above `limit` is returned as
 * `limit + 1`, so long unrelated names cost little.
 */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let beforePrevious: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        value = Math.min(value, (beforePrevious[j - 2] ?? 0) + 1);
      }
      current.push(value);
      rowMin = Math.min(rowMin, value);
    }
    if (rowMin > limit) return limit + 1;
    beforePrevious = previous;
    previous = current;
  }
  return Math.min(previous[b.length] ?? limit + 1, limit + 1);
}
