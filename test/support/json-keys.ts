/**
 * The top-level keys of a JSON object text, in order, duplicates included: JSON.parse keeps only
 * the last of two equal keys, and so would hide what a log pipeline trips over.
 */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
      const after = text.slice(i + 1).trimStart();
      if (depth === 1 && after.startsWith(":")) keys.push(JSON.parse(text.slice(start, i + 1)) as string);
    } else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
  }
  return keys;
}

/** The keys that occur more than once at the top of a JSON object text. */
export function duplicateKeys(text: string): string[] {
  const keys = topLevelKeys(text);
  return [...new Set(keys.filter((key, i) => keys.indexOf(key) !== i))];
}
