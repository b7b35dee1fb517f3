import type { SshSession } from "@solstice/ssh";
import type { RunnerFileVariable } from "./runner-files.ts";

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A step that cannot start; the message says what to change. */
export class StepPreflightError extends Error {
  override name = "StepPreflightError";
  readonly code = "step_preflight";
}

export interface StepPreflight {
  readonly files: Record<RunnerFileVariable, string>;
  /** The directory the step runs in, which must exist, as on GitHub; `written` as the workflow wrote it. */
  readonly workingDirectory?: { readonly absolute: string; readonly written: string };
  /** The shell template and the PATH its program is looked up on. */
  readonly shell?: { readonly template: string; readonly path: string };
  /** Named in the message when the shell's program is missing. */
  readonly runsOn: string;
}

/** The program a shell template starts (`python` of `python {0}`), unless the template runs the script itself. */
export function shellProgram(template: string): string | undefined {
  const first = template.trim().split(/\s+/)[0] ?? "";
  return first === "" || first.includes("{0}") ? undefined : first;
}

/**
 * Gets one step ready in a single round trip: creates its runner files empty (so `>> "$GITHUB_OUTPUT"`
 * works in any shell), and checks that its working directory exists and its shell's program is
 * installed, so a step that cannot start fails with a message saying why instead of a bare exit code.
 * Throws StepPreflightError.
 */
export async function prepareStep(session: SshSession, step: StepPreflight, signal: AbortSignal): Promise<void> {
  const files = Object.values(step.files);
  const dir = files[0]?.replace(/\/[^/]*$/, "") ?? "/tmp";
  const program = step.shell ? shellProgram(step.shell.template) : undefined;
  const lines = [`mkdir -p ${shellQuote(dir)} && : | tee ${files.map(shellQuote).join(" ")} >/dev/null || echo files`];
  if (step.workingDirectory) lines.push(`[ -d ${shellQuote(step.workingDirectory.absolute)} ] || echo directory`);
  if (step.shell && program) {
    lines.push(
      `( PATH=${shellQuote(step.shell.path)}; command -v ${shellQuote(program)} >/dev/null 2>&1 ) || echo program`,
    );
  }
  const problems: string[] = [];
  await session.exec(lines.join("\n"), { signal, onStdout: (line) => problems.push(line.trim()) });
  if (problems.includes("files")) throw new StepPreflightError(`could not create the step's runner files in ${dir}`);
  if (problems.includes("directory") && step.workingDirectory) {
    const { written, absolute } = step.workingDirectory;
    throw new StepPreflightError(
      `working-directory \`${written}\` (${absolute}) does not exist in the guest; create it in an earlier step, or fix the path`,
    );
  }
  if (problems.includes("program") && step.shell && program) {
    throw new StepPreflightError(
      `shell \`${step.shell.template}\` needs \`${program}\`, which is not installed in this guest (label ${step.runsOn}, PATH=${step.shell.path}); install it in an earlier step (adding its directory to $GITHUB_PATH if it is not on PATH), or run the job on a label whose image has it`,
    );
  }
}
