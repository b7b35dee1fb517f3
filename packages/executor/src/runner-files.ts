import { type GuestSession, shellQuote } from "@solstice/ssh";

/** The four files a step writes to talk back to the runner, as on GitHub and Forgejo. */
export const RUNNER_FILES = {
  GITHUB_ENV: "env",
  GITHUB_OUTPUT: "output",
  GITHUB_PATH: "path",
  GITHUB_STEP_SUMMARY: "summary",
} as const;

export type RunnerFileVariable = keyof typeof RUNNER_FILES;

/** Bound on each file read back (GitHub's own limit for a step summary); a larger file fails the step. */
export const MAX_RUNNER_FILE_BYTES = 1024 * 1024;

export class RunnerFileError extends Error {
  override name = "RunnerFileError";
  readonly code = "runner_file";
}

/** Paths of one step's files in the guest. */
export function runnerFilePaths(dir: string, stepIndex: number): Record<RunnerFileVariable, string> {
  const paths = {} as Record<RunnerFileVariable, string>;
  for (const [variable, name] of Object.entries(RUNNER_FILES)) {
    paths[variable as RunnerFileVariable] = `${dir}/${name}_${stepIndex}`;
  }
  return paths;
}

/**
 * Reads the step's files back. Each is sent base64-encoded, so line splitting on the way cannot
 * change its bytes; a file over MAX_RUNNER_FILE_BYTES is an error naming it.
 */
export async function readRunnerFiles<K extends string = RunnerFileVariable>(
  session: GuestSession,
  paths: Record<K, string>,
  signal: AbortSignal,
): Promise<Record<K, string>> {
  const script = (Object.entries(paths) as [string, string][])
    .map(
      ([variable, path]) =>
        `echo '#${variable}'; if [ -f ${shellQuote(path)} ]; then wc -c < ${shellQuote(path)}; ` +
        `head -c ${MAX_RUNNER_FILE_BYTES} ${shellQuote(path)} | base64; else echo 0; fi`,
    )
    .join("\n");
  const lines: string[] = [];
  await session.exec(script, { signal, onStdout: (line) => lines.push(line) });
  const out = {} as Record<K, string>;
  let current: K | undefined;
  let size = -1;
  let chunks: string[] = [];
  const finish = () => {
    if (current === undefined) return;
    if (size > MAX_RUNNER_FILE_BYTES) {
      throw new RunnerFileError(
        `$${current} holds ${size} bytes; at most ${MAX_RUNNER_FILE_BYTES} are read back (write less to it)`,
      );
    }
    out[current] = Buffer.from(chunks.join(""), "base64").toString("utf8");
  };
  for (const line of lines) {
    if (line.startsWith("#")) {
      finish();
      current = line.slice(1) as K;
      size = -1;
      chunks = [];
    } else if (size < 0) size = Number(line.trim());
    else chunks.push(line.trim());
  }
  finish();
  for (const variable of Object.keys(paths) as K[]) out[variable] ??= "";
  return out;
}

/**
 * Parses GITHUB_ENV / GITHUB_OUTPUT: `name=value` lines and the multi-line form
 * `name<<DELIMITER` … `DELIMITER`. Throws RunnerFileError for an unterminated block or a line
 * that is neither form, as the Actions runner does.
 */
export function parseKeyValueFile(text: string, variable: string): Record<string, string> {
  const values: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.trim() === "") continue;
    const heredoc = line.indexOf("<<");
    const eq = line.indexOf("=");
    if (eq > 0 && (heredoc < 0 || eq < heredoc)) {
      values[line.slice(0, eq)] = line.slice(eq + 1);
      continue;
    }
    if (heredoc > 0) {
      const name = line.slice(0, heredoc);
      const delimiter = line.slice(heredoc + 2);
      if (delimiter === "") throw new RunnerFileError(`$${variable}: \`${line}\` has an empty delimiter`);
      const body: string[] = [];
      let closed = false;
      for (i++; i < lines.length; i++) {
        if (lines[i] === delimiter) {
          closed = true;
          break;
        }
        body.push(lines[i] ?? "");
      }
      if (!closed) {
        throw new RunnerFileError(`$${variable}: the value of ${name} is not closed by a line \`${delimiter}\``);
      }
      values[name] = body.join("\n");
      continue;
    }
    throw new RunnerFileError(`$${variable}: \`${line.slice(0, 80)}\` is neither name=value nor name<<DELIMITER`);
  }
  return values;
}

/** GITHUB_PATH: one directory per line. */
export function parsePathFile(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
}
