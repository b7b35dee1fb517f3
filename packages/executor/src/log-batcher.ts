/** One line of output, as it leaves the VM. */
export interface OutputLine {
  readonly time: Date;
  readonly text: string;
  readonly stream: "stdout" | "stderr" | "system";
}

export interface LogBatcherOptions {
  /** Flush when this many lines are waiting (default 200). */
  readonly maxLines?: number;
  /** Flush when the waiting text reaches this many bytes (default 32 KiB). */
  readonly maxBytes?: number;
  /** Flush at the latest this long after the first waiting line (default 200 ms). */
  readonly maxDelayMs?: number;
}

/**
 * Groups output lines into batches by size and a short time window, so the bus carries one
 * message per batch rather than one per line. The buffer is bounded by `maxLines`/`maxBytes`:
 * reaching either flushes at once.
 */
export class LogBatcher {
  private lines: OutputLine[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly maxLines: number;
  private readonly maxBytes: number;
  private readonly maxDelayMs: number;

  constructor(
    private readonly flushBatch: (lines: OutputLine[]) => void,
    options: LogBatcherOptions = {},
  ) {
    this.maxLines = options.maxLines ?? 200;
    this.maxBytes = options.maxBytes ?? 32 * 1024;
    this.maxDelayMs = options.maxDelayMs ?? 200;
  }

  add(line: OutputLine): void {
    this.lines.push(line);
    this.bytes += Buffer.byteLength(line.text);
    if (this.lines.length >= this.maxLines || this.bytes >= this.maxBytes) {
      this.flush();
    } else {
      this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
    }
  }

  /** Sends whatever is waiting now; the barrier before a step's end event. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.lines.length === 0) return;
    const batch = this.lines;
    this.lines = [];
    this.bytes = 0;
    this.flushBatch(batch);
  }
}
