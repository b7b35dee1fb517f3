import { readFile } from "node:fs/promises";

/** A secret could not be read for `ciadm run`; the message names the secret or file, never a value. */
export class SecretInputError extends Error {
  override readonly name = "SecretInputError";
  readonly code = "secret_input";
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The secrets of a local run: `--secret NAME` takes the value of the environment variable NAME,
 * `--secrets-file FILE` reads `NAME=VALUE` lines (a value may be a JSON string, for newlines).
 * Values never come from the command line itself, where `ps` and shell history would keep them.
 */
export async function readSecrets(
  names: readonly string[],
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Record<string, string>> {
  const secrets: Record<string, string> = {};
  if (file) Object.assign(secrets, parseSecretsFile(await readFile(file, "utf8"), file));
  for (const name of names) {
    if (name.includes("=")) {
      throw new SecretInputError(
        `--secret takes a name, not a value: put the value in the environment variable ${name.split("=")[0]} or in --secrets-file`,
      );
    }
    if (!NAME.test(name)) throw new SecretInputError(`--secret ${name}: not a valid secret name`);
    const value = env[name];
    if (value === undefined) {
      throw new SecretInputError(
        `--secret ${name}: the environment variable ${name} is not set; export it first, or use --secrets-file`,
      );
    }
    secrets[name] = value;
  }
  return secrets;
}

export function parseSecretsFile(text: string, file: string): Record<string, string> {
  const secrets: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    const name = eq > 0 ? line.slice(0, eq).trim() : "";
    if (!NAME.test(name)) throw new SecretInputError(`${file}:${i + 1}: expected NAME=VALUE`);
    let value = line.slice(eq + 1);
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        throw new SecretInputError(`${file}:${i + 1}: ${name}'s quoted value is not a valid JSON string`);
      }
    }
    secrets[name] = value;
  });
  return secrets;
}
