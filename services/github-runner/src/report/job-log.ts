import { randomUUID } from "node:crypto";
import type { JobMasker } from "../run/job-masker.ts";
import type { StepInfo } from "../run/job-plan.ts";

export type RecordState = "pending" | "inProgress" | "completed";
/** GitHub's TaskResult names, as the official runner writes them. */
export type TaskResult = "succeeded" | "succeededWithIssues" | "failed" | "canceled" | "skipped" | "abandoned";

/** One timeline record: "Set up job", each step, "Complete job". */
export interface StepRecord {
  id: string;
  name: string;
  refName: string;
  /** 1-based, the step number GitHub shows. */
  order: number;
  state: RecordState;
  result?: TaskResult;
  startTime?: Date;
  finishTime?: Date;
  /** Lines in this record's log. */
  lineCount: number;
  /** The log id the pipelines service gave its uploaded log (classic only). */
  logId?: number;
}

export interface LiveBatch {
  recordId: string;
  lines: string[];
  /** 1-based number of the first line within the record. */
  startLine: number;
}

export interface JobLogOptions {
  jobId: string;
  jobName: string;
  steps: readonly StepInfo[];
  masker: JobMasker;
  /** Lines kept for the uploaded logs; more are counted and dropped. Default 200000. */
  maxLines?: number;
  /** Lines waiting for the live feed; more are dropped from the feed only (the uploaded log keeps them). Default 10000. */
  maxLiveLines?: number;
}

/**
 * One job's timeline and logs as GitHub will see them, every line masked once on its way in:
 * the records and their states, each record's log (for the upload at the end), and the lines
 * not yet sent live. Lines outside any step go to "Set up job" before the first step and to
 * "Complete job" after.
 */
export class JobLog {
  readonly records: StepRecord[];
  readonly job: {
    id: string;
    name: string;
    state: RecordState;
    result?: TaskResult;
    startTime: Date;
    finishTime?: Date;
  };
  private readonly logs = new Map<string, string[]>();
  private live: LiveBatch[] = [];
  private liveCount = 0;
  private readonly changed = new Set<string>();
  private stored = 0;
  private dropped = 0;
  private liveDropped = 0;
  private anyStepStarted = false;

  constructor(private readonly opts: JobLogOptions) {
    const now = new Date();
    const record = (id: string, name: string, refName: string, order: number): StepRecord => ({
      id,
      name,
      refName,
      order,
      state: "pending",
      lineCount: 0,
    });
    this.records = [
      record(randomUUID(), "Set up job", "__setup", 1),
      ...opts.steps.map((s, i) => record(s.recordId, s.name, s.refName, i + 2)),
      record(randomUUID(), "Complete job", "__complete", opts.steps.length + 2),
    ];
    this.job = { id: opts.jobId, name: opts.jobName, state: "inProgress", startTime: now };
    const setup = this.records[0] as StepRecord;
    setup.state = "inProgress";
    setup.startTime = now;
    for (const r of this.records) this.changed.add(r.id);
  }

  private get setup(): StepRecord {
    return this.records[0] as StepRecord;
  }

  private get complete(): StepRecord {
    return this.records[this.records.length - 1] as StepRecord;
  }

  /** The record of planned step `index` (0-based), or of the set-up/complete records for -1. */
  private recordOf(step: number): StepRecord {
    if (step < 0) return this.anyStepStarted ? this.complete : this.setup;
    return this.records[step + 1] ?? this.complete;
  }

  /** One output line of planned step `step` (0-based), or -1 for lines outside any step. */
  line(step: number, text: string, time = new Date(), force = false): void {
    const record = this.recordOf(step);
    const masked = this.opts.masker.mask(text.replace(/[\r\n]+$/, ""));
    if (!force && this.stored >= (this.opts.maxLines ?? 200_000)) {
      this.dropped++;
      return;
    }
    this.stored++;
    record.lineCount++;
    const log = this.logs.get(record.id) ?? [];
    log.push(`${time.toISOString().replace("Z", "0000Z")} ${masked}`);
    this.logs.set(record.id, log);
    if (this.liveCount >= (this.opts.maxLiveLines ?? 10_000)) {
      this.liveDropped++;
      return;
    }
    this.liveCount++;
    const last = this.live[this.live.length - 1];
    if (last && last.recordId === record.id) last.lines.push(masked);
    else this.live.push({ recordId: record.id, lines: [masked], startLine: record.lineCount });
  }

  stepStarted(step: number, time = new Date()): void {
    const record = this.records[step + 1];
    if (!record || step + 1 >= this.records.length - 1) return;
    if (!this.anyStepStarted) {
      this.anyStepStarted = true;
      this.close(this.setup, "succeeded", time);
    }
    record.state = "inProgress";
    record.startTime = time;
    this.changed.add(record.id);
  }

  stepFinished(step: number, result: TaskResult, time = new Date()): void {
    const record = this.records[step + 1];
    if (!record || step + 1 >= this.records.length - 1) return;
    if (!this.anyStepStarted) {
      this.anyStepStarted = true;
      this.close(this.setup, "succeeded", time);
    }
    record.startTime ??= time;
    this.close(record, result, time);
  }

  private close(record: StepRecord, result: TaskResult, time: Date): void {
    record.state = "completed";
    record.result = result;
    record.startTime ??= time;
    record.finishTime = time;
    this.changed.add(record.id);
  }

  /**
   * Ends the job: steps still running are canceled, steps that never started are skipped (the
   * set-up record fails when the job never reached a step), "Complete job" closes.
   */
  finish(result: TaskResult, time = new Date()): void {
    if (this.dropped > 0) {
      const note = `[solstice] ${this.dropped} log lines were not kept: the job wrote more than ${this.opts.maxLines ?? 200_000}`;
      this.dropped = 0;
      this.line(-1, note, time, true);
    }
    if (this.liveDropped > 0) {
      this.line(
        -1,
        `[solstice] ${this.liveDropped} lines were not shown live; they are in the uploaded log`,
        time,
        true,
      );
    }
    for (const record of this.records.slice(1, -1)) {
      if (record.state === "inProgress") this.close(record, "canceled", time);
      else if (record.state === "pending") this.close(record, "skipped", time);
    }
    if (this.setup.state !== "completed") this.close(this.setup, result === "succeeded" ? "succeeded" : "failed", time);
    this.complete.startTime ??= time;
    this.close(this.complete, "succeeded", time);
    this.job.state = "completed";
    this.job.result = result;
    this.job.finishTime = time;
  }

  /** Lines to send live since the last call, in order. */
  takeLive(): LiveBatch[] {
    const batches = this.live;
    this.live = [];
    this.liveCount = 0;
    return batches;
  }

  /** Records changed since the last call. */
  takeChanged(): StepRecord[] {
    const changed = this.records.filter((r) => this.changed.has(r.id));
    this.changed.clear();
    return changed;
  }

  /** Marks records to be sent again (their update failed). */
  markChanged(records: readonly StepRecord[]): void {
    for (const r of records) this.changed.add(r.id);
  }

  /** A record's log as uploaded: one line per `\n`, each prefixed with its time. */
  logText(recordId: string): string {
    const lines = this.logs.get(recordId) ?? [];
    return lines.length ? `${lines.join("\n")}\n` : "";
  }

  /** The whole job's log: every record's lines in record order. */
  jobLogText(): { text: string; lines: number } {
    const all = this.records.flatMap((r) => this.logs.get(r.id) ?? []);
    return { text: all.length ? `${all.join("\n")}\n` : "", lines: all.length };
  }
}
