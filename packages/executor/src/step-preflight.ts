import { shellQuote } from "@solstice/ssh";
import type { RunnerFileVariable } from "./runner-files.ts";

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

/** The directory the step's runner files go in. */
function runnerFilesDir(step: StepPreflight): string {
  return Object.values(step.files)[0]?.replace(/\/[^/]*$/, "") ?? "/tmp";
}

/**
 * Shell lines that get one step ready on the round trip that runs it (`runScript`'s prelude): they
 * create its runner files empty (so `>> "$GITHUB_OUTPUT"` works in any shell), and check that its
 * working directory exists and its shell's program is installed, adding a word to `refused` for
 * each problem. Builtins only, but for the files' directory once per job: every process costs
 * 10–40 ms under TCG.
 */
export function preflightScript(step: StepPreflight): string {
  const files = Object.values(step.files);
  const dir = shellQuote(runnerFilesDir(step));
  const program = step.shell ? shellProgram(step.shell.template) : undefined;
  const create = files.map((file) => `: > ${shellQuote(file)}`).join(" && ");
  const lines = [`{ [ -d ${dir} ] || mkdir -p ${dir}; } && ${create} || refused="$refused files"`];
  if (step.workingDirectory) {
    lines.push(`[ -d ${shellQuote(step.workingDirectory.absolute)} ] || refused="$refused directory"`);
  }
  if (step.shell && program) {
    lines.push(
      `solstice_path=$PATH; PATH=${shellQuote(step.shell.path)}`,
      `command -v ${shellQuote(program)} >/dev/null 2>&1 || refused="$refused program"`,
      "PATH=$solstice_path; unset solstice_path",
    );
  }
  return lines.join("\n");
}

/**
 * The error for the words `preflightScript` refused with, so a step that cannot start fails with a
 * message saying why instead of a bare exit code.
 */
export function preflightError(problems: readonly string[], step: StepPreflight): StepPreflightError {
  const dir = runnerFilesDir(step);
  const program = step.shell ? shellProgram(step.shell.template) : undefined;
  if (problems.includes("setup")) {
    return new StepPreflightError("could not prepare the guest: the job's directories were not created");
  }
  if (problems.includes("files")) return new StepPreflightError(`could not create the step's runner files in ${dir}`);
  if (problems.includes("directory") && step.workingDirectory) {
    const { written, absolute } = step.workingDirectory;
    return new StepPreflightError(
      `working-directory \`${written}\` (${absolute}) does not exist in the guest; create it in an earlier step, or fix the path`,
    );
  }
  if (problems.includes("program") && step.shell && program) {
    return new StepPreflightError(
      `shell \`${step.shell.template}\` needs \`${program}\`, which is not installed in this guest (label ${step.runsOn}, PATH=${step.shell.path}); install it in an earlier step (adding its directory to $GITHUB_PATH if it is not on PATH), or run the job on a label whose image has it`,
    );
  }
  return new StepPreflightError(`the step could not start in the guest (${problems.join(", ")})`);
}
