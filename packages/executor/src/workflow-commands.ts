/** An `::error`/`::warning`/`::notice` line of a step, with its optional file position (GitHub's property names). */
export interface Annotation {
  level: "error" | "warning" | "notice";
  message: string;
  title?: string;
  file?: string;
  line?: number;
  column?: number;
  endLine?: number;
  endColumn?: number;
}

/** What a line of step output becomes. */
export interface CommandResult {
  /** The line to log, or undefined to hide it (add-mask, stop-commands, debug when not debugging). */
  display: string | undefined;
}

export interface WorkflowCommandHooks {
  /** Registers a value to mask in all later output: the secret masker's hook. */
  addMask(value: string): void;
  /** `::debug::` lines are shown only when ACTIONS_STEP_DEBUG is true, as on GitHub. */
  debug: boolean;
  /** The deprecated `::set-output name=x::v`, still honoured by GitHub with a warning. */
  setOutput?(name: string, value: string): void;
}

/** Bound on annotations kept per step; later ones are still logged, not kept. */
export const MAX_ANNOTATIONS = 100;

const COMMAND = /^::([A-Za-z-]+)(?: ([^:]*))?::(.*)$/s;

/** Undoes the runner's escaping of command data (`%25`, `%0D`, `%0A`) and properties (also `%3A`, `%2C`). */
function unescapeCommand(text: string, property: boolean): string {
  let out = text.replaceAll("%0D", "\r").replaceAll("%0A", "\n");
  if (property) out = out.replaceAll("%3A", ":").replaceAll("%2C", ",");
  return out.replaceAll("%25", "%");
}

function properties(text: string | undefined): Record<string, string> {
  const props: Record<string, string> = {};
  for (const pair of (text ?? "").split(",")) {
    const eq = pair.indexOf("=");
    if (eq > 0) props[pair.slice(0, eq).trim()] = unescapeCommand(pair.slice(eq + 1), true);
  }
  return props;
}

function positiveInt(text: string | undefined): number | undefined {
  const n = Number(text);
  return text !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * Reads the workflow commands (`::name props::data`) in one step's output, as the Actions runner
 * does, and decides what of each line is logged. Group and annotation lines stay in the log as
 * written, since forges render them there.
 */
export class WorkflowCommandReader {
  readonly annotations: Annotation[] = [];
  /** Set by `::stop-commands::TOKEN`: commands are ignored until `::TOKEN::`. */
  private stopToken: string | undefined;

  constructor(private readonly hooks: WorkflowCommandHooks) {}

  line(text: string): CommandResult {
    const trimmed = text.trimStart();
    if (!trimmed.startsWith("::")) return { display: text };
    if (this.stopToken !== undefined) {
      if (trimmed.trimEnd() === `::${this.stopToken}::`) {
        this.stopToken = undefined;
        return { display: undefined };
      }
      return { display: text };
    }
    const match = COMMAND.exec(trimmed);
    if (match === null) return { display: text };
    const [, name = "", props, rawData = ""] = match;
    const data = unescapeCommand(rawData, false);
    switch (name.toLowerCase()) {
      case "add-mask":
        // The line itself is never logged: it holds the value to hide.
        if (data.trim() !== "") this.hooks.addMask(data.trim());
        return { display: undefined };
      case "stop-commands":
        if (data.trim() !== "") this.stopToken = data.trim();
        return { display: undefined };
      case "debug":
        return { display: this.hooks.debug ? text : undefined };
      case "error":
      case "warning":
      case "notice": {
        if (this.annotations.length < MAX_ANNOTATIONS) {
          const p = properties(props);
          const line = positiveInt(p.line);
          const column = positiveInt(p.col);
          const endLine = positiveInt(p.endLine);
          const endColumn = positiveInt(p.endColumn);
          this.annotations.push({
            level: name.toLowerCase() as Annotation["level"],
            message: data,
            ...(p.title ? { title: p.title } : {}),
            ...(p.file ? { file: p.file } : {}),
            ...(line === undefined ? {} : { line }),
            ...(column === undefined ? {} : { column }),
            ...(endLine === undefined ? {} : { endLine }),
            ...(endColumn === undefined ? {} : { endColumn }),
          });
        }
        return { display: text };
      }
      case "set-output": {
        const outputName = properties(props).name;
        if (outputName && this.hooks.setOutput) this.hooks.setOutput(outputName, data);
        return { display: undefined };
      }
      default:
        // group, endgroup and commands we do not act on stay in the log as written.
        return { display: text };
    }
  }
}
