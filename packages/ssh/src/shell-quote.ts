/** Quotes a value for a POSIX shell command line: single quotes, with embedded ones escaped. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** `export NAME='value'` lines for a POSIX shell; rejects names a shell cannot take. */
export function exportLines(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([name, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new TypeError(`invalid environment variable name: ${name}`);
      return `export ${name}=${shellQuote(value)}\n`;
    })
    .join("");
}
