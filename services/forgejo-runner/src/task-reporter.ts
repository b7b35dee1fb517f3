import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { Backoff, sleep } from "@solstice/forge-relay";
import type { Logger } from "pino";
import type { ForgeClient } from "./forge-client.ts";
import { type LogRow, LogRowSchema, Result, type StepState, StepStateSchema } from "./gen/runner/v1/messages_pb.ts";
import type { RunnerMetrics } from "./runner-metrics.ts";

export interface TaskReporterOptions {
  client: ForgeClient;
  taskId: bigint;
  stepCount: number;
  /** Values replaced by *** in every row before it is sent (secrets, the task token). */
  masks: readonly string[];
  log: Logger;
  /** How often buffered rows and the state are sent. Default 1000, as the Forgejo runner. */
  reportIntervalMs?: number;
  /** Longest wait between retries while the forge fails. Default 30000. */
  maxBackoffMs?: number;
  /**
   * While backing off, how often a cheap Ping asks whether the forge is back; when it answers, the
   * rows and the state go at once instead of after the rest of the back-off. Default 2000.
   */
  probeIntervalMs?: number;
  /** Rows kept while the forge does not acknowledge them; more are dropped and counted. Default 100000. */
  maxBufferedRows?: number;
  /** How long the final report keeps retrying a forge that is away. Default 600000. */
  finalDeadlineMs?: number;
  /** Told once when the forge reports the task done while it runs (a user cancel, a timeout). */
  onRemoteEnd(result: Result): void;
  metrics?: Pick<RunnerMetrics, "logRowsSent">;
}

// The forge limits a row to 64 KiB; longer lines are cut with a marker rather than refused.
const MAX_ROW_BYTES = 64 * 1024 - 64;
const MAX_ROWS_PER_REQUEST = 2000;

/**
 * Relays one task's log rows and state to the forge, as the official runner's reporter does:
 * rows are sent from the acknowledged offset, the acknowledged prefix is dropped, what was not
 * acknowledged is sent again next tick, and the end is marked with no_more.
 */
export class TaskReporter {
  private pending: LogRow[] = [];
  /** Global index of pending[0]; everything below it the forge has acknowledged. */
  private offset = 0n;
  /** Global index of the next row produced. */
  private total = 0n;
  private dropped = 0;
  private steps: StepState[];
  private result = Result.UNSPECIFIED;
  private readonly startedAt = new Date();
  private stoppedAt: Date | undefined;
  private readonly outputs = new Map<string, string>();
  private readonly sentOutputs = new Set<string>();
  private remoteEnded = false;
  private readonly stopTicking = new AbortController();
  private readonly ticking: Promise<void>;

  constructor(private readonly opts: TaskReporterOptions) {
    this.steps = this.freshSteps();
    this.ticking = this.tick();
  }

  /** One output line; `step` is the 0-based step it belongs to, or -1 for set-up and clean-up lines. */
  addLine(step: number, time: Date, text: string): void {
    if (this.pending.length >= (this.opts.maxBufferedRows ?? 100_000)) {
      this.dropped++;
      return;
    }
    const content = this.mask(text.replace(/[\r\n]+$/, ""));
    const index = this.total++;
    const state = this.steps[step];
    if (state) {
      if (state.logLength === 0n) state.logIndex = index;
      state.logLength++;
    }
    this.pending.push(
      create(LogRowSchema, {
        time: timestampFromDate(time),
        content: Buffer.byteLength(content) > MAX_ROW_BYTES ? `${content.slice(0, MAX_ROW_BYTES / 4)}…` : content,
      }),
    );
  }

  stepStarted(step: number, time: Date): void {
    const state = this.steps[step];
    if (!state) return;
    state.startedAt = timestampFromDate(time);
    if (state.logLength === 0n) state.logIndex = this.total;
  }

  stepFinished(step: number, result: Result, time: Date): void {
    const state = this.steps[step];
    if (!state) return;
    state.result = result;
    state.startedAt ??= timestampFromDate(time);
    state.stoppedAt = timestampFromDate(time);
    if (state.logLength === 0n) state.logIndex = this.total;
  }

  /**
   * A new attempt of the job starts its steps again. The forge's log only grows, so the earlier
   * attempt's rows stay where they are, before the new first step: the forge shows them under
   * "Set up job", next to the line that says why the job was retried.
   */
  newAttempt(): void {
    this.steps = this.freshSteps();
  }

  /**
   * Sends everything that is left and the final result, retrying through forge outages until
   * every row and output is acknowledged or the final deadline passes.
   */
  async finish(result: Result, outputs: Record<string, string>, time = new Date()): Promise<void> {
    this.stopTicking.abort();
    await this.ticking;
    if (this.dropped > 0) {
      this.addLine(
        -1,
        time,
        `[solstice] ${this.dropped} log rows were dropped: the forge did not acknowledge them in time`,
      );
    }
    this.result = result;
    this.stoppedAt = time;
    for (const state of this.steps) {
      if (state.result === Result.UNSPECIFIED) {
        // A step that never started (the job was refused, or ended before it) did not run: skipped,
        // as Forgejo's own runner shows it; only one cut off while running was cancelled.
        state.result = result === Result.SKIPPED || state.startedAt === undefined ? Result.SKIPPED : Result.CANCELLED;
        if (state.logLength === 0n) state.logIndex = this.total;
      }
    }
    if (result === Result.SUCCESS) for (const [k, v] of Object.entries(outputs)) this.outputs.set(k, v);
    // A no_more with no rows is ignored by the forge, so the end always carries at least one row.
    if (this.pending.length === 0) this.addLine(-1, time, "");
    const deadline = Date.now() + (this.opts.finalDeadlineMs ?? 600_000);
    const backoff = new Backoff(100, 10_000);
    for (;;) {
      try {
        await this.flushLog(true);
        await this.sendState();
        if ([...this.outputs.keys()].every((k) => this.sentOutputs.has(k))) return;
      } catch (error) {
        this.opts.log.warn({ err: ConnectError.from(error).message }, "final report to the forge failed; retrying");
      }
      if (Date.now() > deadline) {
        this.opts.log.error({ task_id: String(this.opts.taskId) }, "the forge did not take the final report in time");
        return;
      }
      await sleep(backoff.next());
    }
  }

  private freshSteps(): StepState[] {
    return Array.from({ length: this.opts.stepCount }, (_, i) => create(StepStateSchema, { id: BigInt(i) }));
  }

  private mask(text: string): string {
    let out = text;
    for (const value of this.opts.masks) out = out.split(value).join("***");
    return out;
  }

  private async tick(): Promise<void> {
    const interval = this.opts.reportIntervalMs ?? 1000;
    const backoff = new Backoff(interval, this.opts.maxBackoffMs ?? 30_000);
    while (!this.stopTicking.signal.aborted) {
      let wait = interval;
      try {
        // As the Forgejo runner: the rows first, so a step's range never points past what the forge has.
        await this.flushLog(false);
        await this.sendState();
        backoff.reset();
      } catch (error) {
        wait = backoff.next();
        this.opts.log.warn({ err: ConnectError.from(error).message, retry_in_ms: wait }, "report to the forge failed");
        if (await this.forgeBackWithin(wait)) backoff.reset();
        continue;
      }
      await sleep(wait, this.stopTicking.signal);
    }
  }

  /**
   * Waits up to `ms` for the forge, pinging it every probe interval; true as soon as it answers.
   * The live log and the task's heartbeat resume then, not when a long back-off runs out.
   */
  private async forgeBackWithin(ms: number): Promise<boolean> {
    const probeMs = this.opts.probeIntervalMs ?? 2_000;
    const deadline = Date.now() + ms;
    while (!this.stopTicking.signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await sleep(Math.min(probeMs, left), this.stopTicking.signal);
      if (this.stopTicking.signal.aborted || Date.now() >= deadline) return false;
      try {
        await this.opts.client.ping.ping({ data: "solstice" }, { timeoutMs: probeMs, signal: this.stopTicking.signal });
        this.opts.log.info({ task_id: String(this.opts.taskId) }, "the forge answers again; resuming reports");
        return true;
      } catch {
        // Still away: probe again.
      }
    }
    return false;
  }

  /** Sends the pending rows in bounded requests until all are acknowledged; throws when the forge stops taking them. */
  private async flushLog(noMore: boolean): Promise<void> {
    while (this.pending.length > 0) {
      // A copy: lines keep arriving while the call is in flight.
      const rows = this.pending.slice(0, MAX_ROWS_PER_REQUEST);
      const last = rows.length === this.pending.length;
      const { ackIndex: ack } = await this.opts.client.runner.updateLog({
        taskId: this.opts.taskId,
        index: this.offset,
        rows,
        noMore: noMore && last,
      });
      if (ack < this.offset) {
        throw new Error(`submitted logs are lost: the forge acknowledged ${ack} rows, fewer than its ${this.offset}`);
      }
      const taken = ack - this.offset;
      // Rows added while the call was in flight stay in `pending` after the acknowledged prefix.
      this.pending = this.pending.slice(Number(taken));
      this.offset = ack;
      this.opts.metrics?.logRowsSent(Number(taken));
      if (taken === 0n) throw new Error(`the forge took none of ${rows.length} rows from index ${this.offset}`);
      if (!noMore && last) return;
    }
  }

  private async sendState(): Promise<void> {
    const outputs = Object.fromEntries([...this.outputs].filter(([k]) => !this.sentOutputs.has(k)));
    const res = await this.opts.client.runner.updateTask({
      state: {
        id: this.opts.taskId,
        result: this.result,
        startedAt: timestampFromDate(this.startedAt),
        ...(this.stoppedAt ? { stoppedAt: timestampFromDate(this.stoppedAt) } : {}),
        steps: this.steps,
      },
      outputs,
    });
    for (const key of res.sentOutputs) this.sentOutputs.add(key);
    const remote = res.state?.result ?? Result.UNSPECIFIED;
    if (
      this.result === Result.UNSPECIFIED &&
      !this.remoteEnded &&
      (remote === Result.CANCELLED || remote === Result.FAILURE)
    ) {
      this.remoteEnded = true;
      this.opts.onRemoteEnd(remote);
    }
  }
}
