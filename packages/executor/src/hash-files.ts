import { createHash } from "node:crypto";
import type { GuestSession } from "@solstice/ssh";
import { type CompiledGlobs, compileGlobs } from "./glob-patterns.ts";

/** As the Actions runner: a hashFiles() call that takes longer fails the expression. */
export const HASH_FILES_TIMEOUT_MS = 120_000;

const FOLLOW_OPTION = "--follow-symbolic-links";

/** A hashFiles() call that cannot be computed; its message names the call. */
export class HashFilesError extends Error {
  override name = "HashFilesError";
  readonly code = "hash_files";
}

/** Where the guest's paths are rooted. */
export interface HashFilesRoots {
  readonly workspace: string;
  readonly home: string;
}

/**
 * The shell script that walks the search paths, keeps the files the patterns select (awk, with
 * the patterns' regular expressions from the environment) and prints `#<n>` before the files of
 * search path n, then `<sha256 hex> <path>` per file. Directories (and, without following links,
 * links to them) are skipped as the runner skips them; a file that cannot be read prints
 * `!unreadable <path>` and stops. POSIX sh, find and awk, and whichever SHA-256 tool the guest
 * has: busybox and GNU sha256sum, FreeBSD sha256, illumos digest.
 */
const SCRIPT = `
if command -v sha256sum >/dev/null 2>&1; then hf_sum() { sha256sum; }
elif command -v sha256 >/dev/null 2>&1; then hf_sum() { sha256 -q; }
elif command -v digest >/dev/null 2>&1; then hf_sum() { digest -a sha256; }
else echo '!no-sha256'; exit 3; fi
i=1
while [ "$i" -le "$HF_SEARCH_COUNT" ]; do
  eval "hf_path=\\$HF_SEARCH_$i"
  if [ -e "$hf_path" ] || [ -L "$hf_path" ]; then
    echo "#$i"
    if [ "$HF_FOLLOW" = 1 ]; then find -L "$hf_path" ! -type d -print; else find "$hf_path" ! -type d -print; fi
  fi
  i=$((i + 1))
done | awk '
BEGIN { n = ENVIRON["HF_PATTERN_COUNT"] + 0; for (k = 1; k <= n; k++) { re[k] = ENVIRON["HF_RE_" k]; neg[k] = ENVIRON["HF_NEG_" k] } }
/^#/ { print; next }
{ m = 0; for (k = 1; k <= n; k++) if ($0 ~ re[k]) m = (neg[k] == "1") ? 0 : 1; if (m) print }
' | while IFS= read -r hf_file; do
  case $hf_file in "#"*) echo "$hf_file"; continue ;; esac
  [ -d "$hf_file" ] && continue
  if [ "$HF_FOLLOW" = 1 ] && [ ! -e "$hf_file" ]; then continue; fi
  hf_hash=$(hf_sum < "$hf_file") || { printf '!unreadable %s\\n' "$hf_file"; exit 3; }
  printf '%s %s\\n' "\${hf_hash%% *}" "$hf_file"
done
`;

/** The call as the runner writes it in errors: `hashFiles('a, b')`. */
function describeCall(args: readonly string[]): string {
  return `hashFiles('${args.join(", ").replaceAll("'", "''")}')`;
}

/**
 * Splits hashFiles() arguments into patterns and options: a first argument starting with `--`
 * must be `--follow-symbolic-links`, as on GitHub.
 */
export function hashFilesRequest(args: readonly string[]): { patterns: string[]; followSymbolicLinks: boolean } {
  const [first, ...rest] = args;
  if (first?.startsWith("--")) {
    if (first.toLowerCase() !== FOLLOW_OPTION) {
      throw new HashFilesError(`Invalid glob option ${first}, available option: '${FOLLOW_OPTION}'`);
    }
    return { patterns: rest, followSymbolicLinks: true };
  }
  return { patterns: [...args], followSymbolicLinks: false };
}

function scriptEnvironment(globs: CompiledGlobs, follow: boolean): Record<string, string> {
  const env: Record<string, string> = {
    HF_FOLLOW: follow ? "1" : "0",
    HF_SEARCH_COUNT: String(globs.searchPaths.length),
    HF_PATTERN_COUNT: String(globs.matchers.length),
  };
  globs.searchPaths.forEach((path, i) => {
    env[`HF_SEARCH_${i + 1}`] = path;
  });
  globs.matchers.forEach((m, i) => {
    env[`HF_RE_${i + 1}`] = m.regex;
    env[`HF_NEG_${i + 1}`] = m.negate ? "1" : "0";
  });
  return env;
}

/** Orders paths as the runner's walk meets them: directory by directory, names in byte order. */
function walkOrder(a: string, b: string): number {
  const x = a.split("/");
  const y = b.split("/");
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const order = Buffer.compare(Buffer.from(x[i] ?? ""), Buffer.from(y[i] ?? ""));
    if (order !== 0) return order;
  }
  return x.length - y.length;
}

/**
 * Combines the guest's per-file digests as the runner does: SHA-256 over each matched file's raw
 * SHA-256 digest, files in walk order (search path by search path); "" when nothing matched.
 */
export function combineFileDigests(lines: readonly string[], call: string): string {
  const groups: { path: string; digest: string }[][] = [];
  for (const line of lines) {
    if (line.startsWith("#")) groups.push([]);
    else if (line.startsWith("!unreadable ")) {
      throw new HashFilesError(`${call} failed: cannot read ${line.slice("!unreadable ".length)}`);
    } else if (line === "!no-sha256") {
      throw new HashFilesError(`${call} failed: the guest has no sha256sum, sha256 or digest command`);
    } else if (line.trim() !== "") {
      const space = line.indexOf(" ");
      const digest = line.slice(0, space).toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(digest)) throw new HashFilesError(`${call} failed: unexpected output \`${line}\``);
      groups.at(-1)?.push({ path: line.slice(space + 1), digest });
    }
  }
  const files = groups.flatMap((group) => group.sort((a, b) => walkOrder(a.path, b.path)));
  if (files.length === 0) return "";
  const total = createHash("sha256");
  for (const file of files) total.update(Buffer.from(file.digest, "hex"));
  return total.digest("hex");
}

/** The guest command for one hashFiles() call: the script, its environment, and the call as written. */
export interface HashFilesCommand {
  readonly call: string;
  readonly script: string;
  readonly env: Record<string, string>;
}

/**
 * Plans one hashFiles() call: undefined when no pattern can select a file in the workspace (the
 * value is then ""). Throws HashFilesError for an invalid option or pattern.
 */
export function hashFilesCommand(args: readonly string[], roots: HashFilesRoots): HashFilesCommand | undefined {
  const call = describeCall(args);
  const { patterns, followSymbolicLinks } = hashFilesRequest(args);
  let globs: CompiledGlobs;
  try {
    globs = compileGlobs(patterns.join("\n"), roots);
  } catch (error) {
    throw new HashFilesError(`${call}: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (globs.searchPaths.length === 0) return undefined;
  return { call, script: SCRIPT, env: scriptEnvironment(globs, followSymbolicLinks) };
}

/**
 * Computes `hashFiles(args…)` in the guest: the files the patterns select under the workspace,
 * hashed there, combined here. Throws HashFilesError naming the call when it cannot.
 */
export async function hashFilesInGuest(
  session: GuestSession,
  args: readonly string[],
  roots: HashFilesRoots,
  signal: AbortSignal,
): Promise<string> {
  const command = hashFilesCommand(args, roots);
  if (command === undefined) return "";
  const timeout = AbortSignal.timeout(HASH_FILES_TIMEOUT_MS);
  const lines: string[] = [];
  try {
    await session.exec(command.script, {
      signal: AbortSignal.any([signal, timeout]),
      env: command.env,
      onStdout: (line) => lines.push(line),
    });
  } catch (error) {
    if (timeout.aborted && !signal.aborted) {
      throw new HashFilesError(`${command.call} couldn't finish within ${HASH_FILES_TIMEOUT_MS / 1000} seconds.`);
    }
    throw error;
  }
  return combineFileDigests(lines, command.call);
}
