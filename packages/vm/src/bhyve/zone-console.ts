import type { CommandRunner } from "./command-runner.ts";

/** Lines of the guest console kept for a boot failure's message. */
const TAIL_LINES = 30;

/**
 * The last lines a zone's guest printed on its serial console, from the console log zoneadmd
 * keeps for the zone, read through the command seam. zoneadmd writes each entry as a JSON
 * object whose `log` (or `msg`) field holds the text; other lines are shown as they are. Empty
 * when the log cannot be read: this only adds detail to an error.
 */
export async function zoneConsoleTail(runner: CommandRunner, logPath: string): Promise<string> {
  try {
    const { stdout } = await runner.run("tail", ["-n", String(TAIL_LINES), logPath], {});
    return stdout
      .split("\n")
      .filter((line) => line !== "")
      .map(consoleText)
      .join("\n")
      .replace(/\r/g, "");
  } catch {
    return "";
  }
}

function consoleText(line: string): string {
  try {
    const entry = JSON.parse(line) as { log?: unknown; msg?: unknown };
    const text = typeof entry.log === "string" ? entry.log : typeof entry.msg === "string" ? entry.msg : undefined;
    return text === undefined ? line : text.replace(/\n$/, "");
  } catch {
    return line;
  }
}
