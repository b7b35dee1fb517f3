/** GitHub's choice on Linux when no `shell:` is given anywhere: plain `bash -e`, without pipefail. */
export const DEFAULT_SHELL = "bash -e {0}";

/** The named shells our guests have, as command templates; `{0}` is where the script file goes. */
export const SHELL_TEMPLATES: Readonly<Record<string, string>> = {
  bash: "bash --noprofile --norc -eo pipefail {0}",
  sh: "sh -e {0}",
  python: "python {0}",
};

const WINDOWS_OR_POWERSHELL = new Set(["pwsh", "powershell", "cmd"]);

export type ShellResolution = { ok: true; template: string } | { ok: false; message: string };

/** Maps a `shell:` value to a command template, or says why it cannot run in our guests. */
export function resolveShell(shell: string): ShellResolution {
  const named = SHELL_TEMPLATES[shell];
  if (named !== undefined) return { ok: true, template: named };
  if (WINDOWS_OR_POWERSHELL.has(shell)) {
    return {
      ok: false,
      message: `shell \`${shell}\` is not installed in Solstice guests; use bash, sh, python or a custom command containing {0}`,
    };
  }
  if (!shell.includes("{0}")) {
    return {
      ok: false,
      message: `shell \`${shell}\` is neither bash, sh nor python, and a custom shell must contain {0} where the script file goes (e.g. "perl {0}")`,
    };
  }
  return { ok: true, template: shell };
}
