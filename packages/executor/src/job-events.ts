import {
  create,
  type JobEvent,
  JobEventSchema,
  LogStream,
  type MessageInitShape,
  Outcome,
  SCHEMA_VERSION,
  timestampFromDate,
} from "@solstice/protocol";
import { LogBatcher, type LogBatcherOptions, type OutputLine } from "./log-batcher.ts";
import { SecretMasker, StreamMasker } from "./secret-masker.ts";

/** Where a job's events go: the bus in the fleet, the terminal in a local run. */
export type PublishEvent = (event: JobEvent) => Promise<void>;

type JobEventBody = MessageInitShape<typeof JobEventSchema>["body"];

const STREAMS = { stdout: LogStream.STDOUT, stderr: LogStream.STDERR, system: LogStream.SYSTEM } as const;

/**
 * The events of one job attempt, numbered with a gap-free `seq` from 1 and published strictly in
 * that order (each publish waits for the one before), so the owner can order, de-duplicate and
 * notice loss. Log lines are batched per step; every step boundary flushes the batch first, so a
 * `StepFinished` never overtakes that step's output.
 *
 * Every text that goes out (log lines, step and job reasons, step outputs) passes `masker` first,
 * so every sink — the bus, the terminal — only ever sees masked text.
 */
export class JobEventStream {
  private seq = 0n;
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;
  private currentStep = -1;
  /** The running step has printed nothing yet: its first line goes out at once, unbatched. */
  private awaitingFirstLine = false;
  private readonly batcher: LogBatcher;
  /** The job's secret values; `masker.add` is also the hook for `::add-mask::`. */
  readonly masker = new SecretMasker();
  private readonly streams = { stdout: new StreamMasker(this.masker), stderr: new StreamMasker(this.masker) };

  constructor(
    readonly jobId: string,
    readonly attempt: number,
    private readonly publish: PublishEvent,
    batching?: LogBatcherOptions,
  ) {
    this.batcher = new LogBatcher((lines) => this.sendLog(lines), batching);
  }

  /** `timing`: the host's heartbeat interval and lease, so the owner can tell silence early. */
  accepted(host: string, timing: { heartbeatIntervalMs?: number; leaseMs?: number } = {}): Promise<void> {
    return this.send({ case: "accepted", value: { host, ...timing } });
  }

  heartbeat(): Promise<void> {
    return this.send({ case: "heartbeat", value: {} });
  }

  stepStarted(index: number, name: string): Promise<void> {
    this.flushOutput();
    this.currentStep = index;
    this.awaitingFirstLine = true;
    return this.send({ case: "stepStarted", value: { index, name } });
  }

  /**
   * One line of output. `continued` marks a piece of an overlong line whose next piece follows
   * (see LineSplitter): its end may be held back until then, so a secret cut in two is still masked.
   */
  line(text: string, stream: OutputLine["stream"], time = new Date(), continued = false): void {
    const masked = stream === "system" ? this.masker.mask(text) : this.streams[stream].push(text, continued);
    if (masked === "" && text !== "") return;
    this.batcher.add({ text: masked, stream, time });
    // Whoever follows the job waits for a step's first output most: it does not wait for the batch.
    if (this.awaitingFirstLine && stream !== "system") {
      this.awaitingFirstLine = false;
      this.batcher.flush();
    }
  }

  stepFinished(
    index: number,
    result: {
      outcome: Outcome;
      conclusion: Outcome;
      exitCode: number;
      reason?: string;
      outputs?: Record<string, string>;
    },
  ): Promise<void> {
    this.flushOutput();
    this.currentStep = -1;
    this.awaitingFirstLine = false;
    const outputs = Object.fromEntries(
      Object.entries(result.outputs ?? {}).map(([name, value]) => [name, this.masker.mask(value)]),
    );
    return this.send({
      case: "stepFinished",
      value: {
        index,
        outcome: result.outcome,
        conclusion: result.conclusion,
        exitCode: result.exitCode,
        reason: this.masker.mask(result.reason ?? ""),
        outputs,
      },
    });
  }

  /**
   * Ends the attempt. A job output that holds a secret is not sent at all (a masked `***` would
   * reach the next job or the forge as if it were the value); the log says which, as on GitHub.
   */
  jobFinished(result: Outcome, reason = "", outputs: Record<string, string> = {}): Promise<void> {
    const sent: Record<string, string> = {};
    for (const [name, value] of Object.entries(outputs)) {
      if (this.masker.mask(value) === value) sent[name] = value;
      else this.line(`output ${name} was not sent: it contains a secret`, "system");
    }
    this.flushOutput();
    return this.send({ case: "jobFinished", value: { result, reason: this.masker.mask(reason), outputs: sent } });
  }

  /** Resolves when everything sent so far is published; rejects if any publish failed. */
  async drain(): Promise<void> {
    this.flushOutput();
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }

  /** Emits what the stream maskers hold, then the batch: the barrier before any step boundary. */
  private flushOutput(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const rest = this.streams[stream].flush();
      if (rest) this.batcher.add({ text: rest, stream, time: new Date() });
    }
    this.batcher.flush();
  }

  private sendLog(lines: OutputLine[]): void {
    // Nobody awaits a log batch: its failure is kept for drain() by send().
    this.send({
      case: "log",
      value: {
        stepIndex: this.currentStep,
        lines: lines.map((l) => ({ text: l.text, stream: STREAMS[l.stream], time: timestampFromDate(l.time) })),
      },
    }).catch(() => {});
  }

  private send(body: JobEventBody): Promise<void> {
    this.seq += 1n;
    const event = create(JobEventSchema, {
      schemaVersion: SCHEMA_VERSION,
      jobId: this.jobId,
      attempt: this.attempt,
      seq: this.seq,
      time: timestampFromDate(new Date()),
      body,
    });
    const sent = this.chain.then(() => this.publish(event));
    // A failed publish must not stop later events from being tried, but is reported by drain().
    this.chain = sent.catch((error: unknown) => {
      this.failure ??= error;
    });
    return sent;
  }
}

export { Outcome };
