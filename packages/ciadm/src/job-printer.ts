import { type Annotation, WorkflowCommandReader } from "@solstice/executor";
import { EventOrder, type JobEvent, LogStream, Outcome } from "@solstice/protocol";

export interface PrintedStep {
  readonly index: number;
  readonly name: string;
  readonly outcome: Outcome;
  readonly conclusion: Outcome;
  readonly reason: string;
  readonly durationMs: number;
}

export interface PrintedJob {
  readonly name: string;
  readonly result: Outcome;
  readonly reason: string;
  readonly steps: PrintedStep[];
  readonly durationMs: number;
  /** The job's `outputs:`, as its JobFinished reported them (masked by the executor). */
  readonly outputs?: Readonly<Record<string, string>>;
  /** The `::error`/`::warning`/`::notice` lines of its steps, with the step's name. */
  readonly annotations?: readonly StepAnnotation[];
}

export interface StepAnnotation extends Annotation {
  readonly step: string;
}

type Write = (text: string) => void;

const OUTCOME_WORD: Record<Outcome, string> = {
  [Outcome.UNSPECIFIED]: "unknown",
  [Outcome.SUCCESS]: "succeeded",
  [Outcome.FAILURE]: "failed",
  [Outcome.CANCELLED]: "cancelled",
  [Outcome.SKIPPED]: "skipped",
};

export function outcomeWord(outcome: Outcome): string {
  return OUTCOME_WORD[outcome];
}

/**
 * Shows one job's events as a person reads them: a header per step, its output indented, the
 * step's result with its duration. The same printer serves the local run and a run through the
 * fleet, since both are a stream of JobEvents.
 */
export class JobPrinter {
  private order = new EventOrder();
  private attempt = 0;
  private readonly joinMidway: boolean;
  private readonly stepNames = new Map<number, string>();
  /** The names the job was planned with: a skipped step has no StepStarted to name it. */
  private readonly plannedNames: readonly string[];
  /** Reads the running step's lines for annotations, as the executor read them. */
  private commands: WorkflowCommandReader | undefined;
  private readonly annotations: StepAnnotation[] = [];
  private readonly stepStarts = new Map<number, number>();
  private readonly steps: PrintedStep[] = [];
  private readonly started = Date.now();
  private finished: PrintedJob | undefined;
  private readonly color: boolean;

  constructor(
    private readonly jobName: string,
    private readonly stepCount: number,
    private readonly write: Write,
    options: { color: boolean; joinMidway?: boolean; stepNames?: readonly string[] },
  ) {
    this.color = options.color;
    this.plannedNames = options.stepNames ?? [];
    this.joinMidway = options.joinMidway ?? false;
  }

  /**
   * Handles one event (in any order); returns the job's summary once JobFinished arrives. Events of
   * an older attempt than one already seen are ignored; a newer attempt starts the steps afresh.
   * With `joinMidway` (a follower of a running job) the first event seen starts the order.
   */
  handle(event: JobEvent): PrintedJob | undefined {
    if (event.attempt < this.attempt) return this.finished;
    if (event.attempt > this.attempt) {
      const first = this.attempt === 0;
      if (!first) this.line(this.dim(`· attempt ${event.attempt} starts: attempt ${this.attempt} was lost`));
      this.order = new EventOrder(10_000, first && this.joinMidway ? event.seq : 1n);
      this.attempt = event.attempt;
      this.steps.length = 0;
      this.annotations.length = 0;
    }
    for (const e of this.order.push(event)) this.print(e);
    return this.finished;
  }

  private print(event: JobEvent): void {
    const body = event.body;
    switch (body.case) {
      case "accepted":
        this.line(this.dim(`· accepted by ${body.value.host}`));
        break;
      case "stepStarted":
        this.stepNames.set(body.value.index, body.value.name);
        this.stepStarts.set(body.value.index, Date.now());
        // The lines reaching here are already filtered (masks, debug); only annotations are still read.
        this.commands = new WorkflowCommandReader({ addMask: () => {}, debug: true });
        this.line(this.bold(`▶ [${body.value.index + 1}/${this.stepCount}] ${body.value.name}`));
        break;
      case "log":
        for (const l of body.value.lines) {
          if (l.stream === LogStream.SYSTEM) this.line(this.dim(`· ${l.text}`));
          else if (!this.annotation(body.value.stepIndex, l.text))
            this.line(`  ${l.stream === LogStream.STDERR ? this.red("│") : "│"} ${l.text}`);
        }
        break;
      case "stepFinished": {
        const { index, outcome, conclusion, reason } = body.value;
        const name = this.nameOf(index);
        const started = this.stepStarts.get(index);
        const durationMs = started === undefined ? 0 : Date.now() - started;
        this.steps.push({ index, name, outcome, conclusion, reason, durationMs });
        this.line(this.stepLine(name, outcome, conclusion, reason, durationMs));
        break;
      }
      case "jobFinished":
        this.finished = {
          name: this.jobName,
          result: body.value.result,
          reason: body.value.reason,
          steps: this.steps,
          durationMs: Date.now() - this.started,
          outputs: body.value.outputs,
          annotations: [...this.annotations],
        };
        break;
      default:
        break;
    }
  }

  private nameOf(index: number): string {
    return this.stepNames.get(index) ?? this.plannedNames[index] ?? `step ${index + 1}`;
  }

  /** Shows a line that is an annotation as one and keeps it for the summary; false for any other line. */
  private annotation(stepIndex: number, text: string): boolean {
    const commands = this.commands;
    if (commands === undefined || !text.trimStart().startsWith("::")) return false;
    const before = commands.annotations.length;
    commands.line(text);
    const found = commands.annotations[before];
    if (found === undefined) return false;
    // Bounded as the executor bounds them: the reader keeps MAX_ANNOTATIONS per step.
    this.annotations.push({ ...found, step: this.nameOf(stepIndex) });
    const [first = "", ...more] = annotationText(found).split("\n");
    const paint = { error: this.red.bind(this), warning: this.yellow.bind(this), notice: this.cyan.bind(this) };
    this.line(`  ${paint[found.level](`${ANNOTATION_MARK[found.level]} ${first}`)}`);
    for (const line of more) this.line(`    ${line}`);
    return true;
  }

  private stepLine(name: string, outcome: Outcome, conclusion: Outcome, reason: string, ms: number): string {
    const time = this.dim(`(${(ms / 1000).toFixed(1)} s)`);
    if (outcome === Outcome.SUCCESS) return `${this.green("✔")} ${name} ${time}`;
    if (outcome === Outcome.SKIPPED) return this.dim(`⊘ ${name} skipped${reason ? `: ${reason}` : ""}`);
    const tolerated = conclusion === Outcome.SUCCESS ? " (continue-on-error)" : "";
    return `${this.red("✘")} ${name} ${outcomeWord(outcome)}${reason ? `: ${reason}` : ""}${tolerated} ${time}`;
  }

  private line(text: string): void {
    this.write(`${text}\n`);
  }
  private paint(code: string, text: string): string {
    return this.color ? `\u001b[${code}m${text}\u001b[0m` : text;
  }
  private dim(text: string) {
    return this.paint("2", text);
  }
  private bold(text: string) {
    return this.paint("1", text);
  }
  private red(text: string) {
    return this.paint("31", text);
  }
  private green(text: string) {
    return this.paint("32", text);
  }
  private yellow(text: string) {
    return this.paint("33", text);
  }
  private cyan(text: string) {
    return this.paint("36", text);
  }
}

const ANNOTATION_MARK: Record<Annotation["level"], string> = { error: "✘", warning: "▲", notice: "●" };

/** `warning a.c:2:5: title: message`, as a compiler writes a diagnostic; parts not given are left out. */
export function annotationText(annotation: Annotation): string {
  const { file, line, column, title } = annotation;
  const at =
    file === undefined
      ? ""
      : [file, line, line === undefined ? undefined : column].filter((p) => p !== undefined).join(":");
  return `${annotation.level}${at ? ` ${at}` : ""}: ${title ? `${title}: ` : ""}${annotation.message}`;
}

/** The closing table of a run: one line per job, which step failed, its annotations and its outputs. */
export function formatSummary(jobs: PrintedJob[]): string {
  const lines = ["", "Summary:"];
  for (const job of jobs) {
    lines.push(
      `  ${job.name.padEnd(24)} ${outcomeWord(job.result).padEnd(10)} ${(job.durationMs / 1000).toFixed(1)} s`,
    );
    for (const step of job.steps.filter(
      (s) => s.conclusion === Outcome.FAILURE || s.conclusion === Outcome.CANCELLED,
    )) {
      lines.push(`    ✘ step "${step.name}" ${outcomeWord(step.outcome)}${step.reason ? `: ${step.reason}` : ""}`);
    }
    if (job.result !== Outcome.SUCCESS && job.reason && !job.steps.some((s) => s.conclusion === Outcome.FAILURE)) {
      lines.push(`    ${job.reason}`);
    }
    for (const annotation of job.annotations ?? []) {
      const [first = "", ...more] = annotationText(annotation).split("\n");
      lines.push(`    ${first} (step "${annotation.step}")`, ...more.map((line) => `      ${line}`));
    }
    for (const [name, value] of Object.entries(job.outputs ?? {})) {
      // A value over several lines is shown as a JSON string, on one line.
      lines.push(`    output ${name} = ${value.includes("\n") ? JSON.stringify(value) : value}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
