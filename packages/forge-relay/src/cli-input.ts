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

/** `a, b,,c` → ["a", "b", "c"]: how labels are given on the command line and in the environment. */
export const commaList = (text: string): string[] =>
  text
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
