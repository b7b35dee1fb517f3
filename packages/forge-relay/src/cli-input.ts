import { createInterface } from "node:readline/promises";

/** Asks on the terminal (prompt on stderr, so stdout stays for output); an empty answer takes `fallback`. */
export async function ask(question: string, fallback?: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = (await rl.question(fallback ? `${question} [${fallback}]: ` : `${question}: `)).trim();
    return answer || fallback || "";
  } finally {
    rl.close();
  }
}

/**
 * For a `register` command: each answer is its flag's value; else, on a terminal and without
 * `--no-interactive`, what the person types; else the fallback; else an error naming the flag.
 */
export function flagOrPrompt(flags: Readonly<Record<string, string | boolean | undefined>>) {
  const interactive = flags.interactive !== false && process.stdin.isTTY;
  return async (key: string, question: string, fallback?: string): Promise<string> => {
    const value = flags[key];
    if (typeof value === "string" && value !== "") return value;
    if (interactive) return ask(question, fallback);
    if (fallback !== undefined) return fallback;
    throw new Error(`--${key} is required with --no-interactive`);
  };
}

/** `a, b,,c` → ["a", "b", "c"]: how labels are given on the command line and in the environment. */
export const commaList = (text: string): string[] =>
  text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

/**
 * How a runner CLI ends on an error that reached the top: one plain line a person can act on
 * (`register` is run by hand), not a JSON log with a stack; exit code 1.
 */
export function exitOnCliError(error: unknown): void {
  process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
