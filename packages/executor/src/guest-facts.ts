import type { JobRequest } from "@solstice/protocol";
import { type GuestSession, shellQuote } from "@solstice/ssh";
import { eventPath, type GuestFacts, guestPlatform, workspacePath } from "./step-environment.ts";

/** RUNNER_TEMP: the fresh VM's /tmp, as the planner's runner context says (`runner.temp`). */
const RUNNER_TEMP = "/tmp";

/** What the guest's login environment is: the same for every job it could run. */
export interface GuestBasics {
  readonly home: string;
  /** Whether bash is on the login PATH; the default `run:` shell falls back to `sh -e` without it. */
  readonly hasBash: boolean;
  /** The login PATH, which GITHUB_PATH entries go in front of. */
  readonly path: string;
  /** `uname -s` and `uname -m`. */
  readonly kernel: string;
  readonly machine: string;
}

/** What the job's steps need to know about the guest, asked once per job. */
export interface PreparedGuest extends GuestFacts {
  readonly hasBash: boolean;
  readonly path: string;
}

/**
 * The job's own setup in a guest whose basics are known: its directories, the event payload
 * GITHUB_EVENT_PATH points at, and the clock check of a VM that waited. It rides on the job's first
 * command (`runScript`'s prelude and files): the prelude refuses with `setup` if a directory could
 * not be made.
 */
export interface GuestSetup {
  readonly prelude: string;
  readonly files: readonly { readonly path: string; readonly content: string; readonly mode: number }[];
}

/** Prints the basics, one per line: home, bash yes/no, PATH, then kernel and machine on one. */
const BASICS_SCRIPT = [
  'printf "%s\\n" "$HOME"',
  "command -v bash >/dev/null 2>&1 && echo yes || echo no",
  'printf "%s\\n" "$PATH"',
  "uname -sm",
].join("\n");

function parseBasics(lines: readonly string[]): GuestBasics {
  const [home = "", bash, path, platform = ""] = lines;
  // Kernel names have no spaces (Linux, FreeBSD, SunOS, Darwin).
  const [kernel = "", machine = ""] = platform.trim().split(/\s+/);
  return {
    home: home || "/root",
    hasBash: bash === "yes",
    path: path || "/usr/local/bin:/usr/bin:/bin",
    kernel,
    machine,
  };
}

/** How many guest identities' basics a process keeps (a host has a few images; rebuilds add some). */
const MAX_REMEMBERED = 64;
const remembered = new Map<string, GuestBasics>();

/**
 * The basics an earlier job of this process learned on a guest of the same identity
 * (`Vm.guestIdentity`: same image build and boot, or same saved state), if any.
 */
export function rememberedBasics(identity: string | undefined): GuestBasics | undefined {
  return identity === undefined ? undefined : remembered.get(identity);
}

/** Keeps what a job learned about a guest for later guests of the same identity. */
export function rememberBasics(identity: string | undefined, basics: GuestBasics): void {
  if (identity === undefined) return;
  remembered.delete(identity);
  remembered.set(identity, basics);
  if (remembered.size > MAX_REMEMBERED) remembered.delete(remembered.keys().next().value as string);
}

/** Learns the guest's basics in one round trip (a warm pool does it while its VM waits). */
export async function learnGuestBasics(session: GuestSession, signal?: AbortSignal): Promise<GuestBasics> {
  const lines: string[] = [];
  const result = await session.exec(BASICS_SCRIPT, { ...(signal ? { signal } : {}), onStdout: (l) => lines.push(l) });
  if (result.exitCode !== 0)
    throw new Error(`could not learn the guest's home, shell and PATH (exit ${result.exitCode})`);
  return parseBasics(lines);
}

/** The job's view of a guest with these basics. */
export function preparedGuest(basics: GuestBasics, job: JobRequest): PreparedGuest {
  return {
    home: basics.home,
    workspace: workspacePath(basics.home, job),
    ...guestPlatform(basics.kernel, basics.machine),
    runnerTemp: RUNNER_TEMP,
    toolCache: `${basics.home}/workspace/_tool`,
    hasBash: basics.hasBash,
    path: basics.path,
  };
}

/** The job's setup for a guest whose basics are known, to ride on its first command. */
export function guestSetup(guest: PreparedGuest, event: unknown, prelude = ""): GuestSetup {
  const eventFile = eventPath(guest);
  const dirs = [guest.workspace, guest.toolCache, eventFile.replace(/\/[^/]*$/, "")];
  return {
    prelude: [
      ...(prelude ? [prelude] : []),
      `mkdir -p ${dirs.map(shellQuote).join(" ")} || refused="$refused setup"`,
    ].join("\n"),
    files: [{ path: eventFile, content: JSON.stringify(event ?? {}), mode: 0o644 }],
  };
}

/**
 * Creates the job's directories in the guest (workspace, tool cache, event payload's folder), writes
 * the event payload GITHUB_EVENT_PATH points at (sent on standard input) and learns the guest's
 * basics, in one round trip. `prelude` (shell, printing nothing) rides on it too.
 */
export async function prepareGuest(
  session: GuestSession,
  job: JobRequest,
  event: unknown,
  signal: AbortSignal,
  prelude = "",
): Promise<{ guest: PreparedGuest; basics: GuestBasics }> {
  const eventFile = eventPath({ runnerTemp: RUNNER_TEMP });
  // The shell expands $HOME in the workspace path (its name is [A-Za-z0-9._-] only).
  const script = [
    ...(prelude ? [prelude] : []),
    `mkdir -p "${workspacePath("$HOME", job)}" "$HOME/workspace/_tool" '${eventFile.replace(/\/[^/]*$/, "")}'`,
    `cat > '${eventFile}' || exit 1`,
    BASICS_SCRIPT,
  ].join("\n");
  const lines: string[] = [];
  const result = await session.exec(script, {
    signal,
    stdin: JSON.stringify(event ?? {}),
    onStdout: (line) => lines.push(line),
  });
  if (result.exitCode !== 0) {
    throw new Error("could not prepare the guest: the job's directories or its event payload were not written");
  }
  const basics = parseBasics(lines);
  return { guest: preparedGuest(basics, job), basics };
}
