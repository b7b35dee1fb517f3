import { open } from "node:fs/promises";
import { generateFleetKey } from "@solstice/protocol";
import type { Command } from "commander";
import type { Terminal } from "../terminal.ts";

/** `ciadm keys generate`: makes a fleet key for SOLSTICE_FLEET_KEYS / SOLSTICE_FLEET_KEYS_FILE. */
export function registerKeys(program: Command, term: Terminal): void {
  program
    .command("keys")
    .description("fleet keys, which seal secrets on the bus")
    .command("generate")
    .description("make a new fleet key (ID:BASE64); put it first in every service's keys to rotate")
    .option("--id <id>", "the key's id (default k<today's date>)")
    .option("--out <file>", "write the key to this new file, mode 0600, instead of stdout")
    .action(async (opts: { id?: string; out?: string }) => {
      const key = await generateKey(opts);
      if (key) term.out(`${key}\n`);
      else term.err(`wrote a new fleet key to ${opts.out} (mode 0600)\n`);
    });
}

/**
 * A new fleet key, written to `out` with mode 0600 (never over an existing file), or returned for
 * stdout when no file is given.
 */
export async function generateKey(opts: { id?: string; out?: string }): Promise<string | undefined> {
  const key = generateFleetKey(opts.id);
  if (!opts.out) return key;
  // "wx": fails if the file exists, so an old key is never overwritten by accident.
  const handle = await open(opts.out, "wx", 0o600);
  try {
    await handle.writeFile(`${key}\n`);
    await handle.chmod(0o600);
  } finally {
    await handle.close();
  }
  return undefined;
}
