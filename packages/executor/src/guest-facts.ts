import type { JobRequest } from "@solstice/protocol";
import type { SshSession } from "@solstice/ssh";
import { eventPath, type GuestFacts, guestPlatform, workspacePath } from "./step-environment.ts";

/** RUNNER_TEMP: the fresh VM's /tmp, as the planner's runner context says (`runner.temp`). */
const RUNNER_TEMP = "/tmp";

/** What the job's steps need to know about the guest, asked once per job. */
export interface PreparedGuest extends GuestFacts {
  /** Whether bash is on the login PATH; the default `run:` shell falls back to `sh -e` without it. */
  readonly hasBash: boolean;
  /** The login PATH, which GITHUB_PATH entries go in front of. */
  readonly path: string;
}

/**
 * Creates the job's directories in the guest (workspace, tool cache, event payload's folder), writes
 * the event payload GITHUB_EVENT_PATH points at (sent on standard input) and learns the guest's home,
 * shell, PATH and platform, in one round trip. `prelude` (shell, printing nothing) rides on it too.
 */
export async function prepareGuest(
  session: SshSession,
  job: JobRequest,
  event: unknown,
  signal: AbortSignal,
  prelude = "",
): Promise<PreparedGuest> {
  const eventFile = eventPath({ runnerTemp: RUNNER_TEMP });
  // The shell expands $HOME in the workspace path (its name is [A-Za-z0-9._-] only).
  const script = [
    ...(prelude ? [prelude] : []),
    `mkdir -p "${workspacePath("$HOME", job)}" "$HOME/workspace/_tool" '${eventFile.replace(/\/[^/]*$/, "")}'`,
    `cat > '${eventFile}' || exit 1`,
    'printf "%s\\n" "$HOME"',
    "command -v bash >/dev/null 2>&1 && echo yes || echo no",
    'printf "%s\\n" "$PATH"',
    "uname -s",
    "uname -m",
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
  const [home = "", bash, path, kernel = "", machine = ""] = lines;
  const homeDir = home || "/root";
  const guest: PreparedGuest = {
    home: homeDir,
    workspace: workspacePath(homeDir, job),
    ...guestPlatform(kernel.trim(), machine.trim()),
    runnerTemp: RUNNER_TEMP,
    toolCache: `${homeDir}/workspace/_tool`,
    hasBash: bash === "yes",
    path: path || "/usr/local/bin:/usr/bin:/bin",
  };
  return guest;
}
