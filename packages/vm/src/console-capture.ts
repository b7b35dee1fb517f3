import { createWriteStream, type WriteStream } from "node:fs";
import { Readable } from "node:stream";
import { LineSplitter } from "@solstice/ssh";

/** Lines held for a `console` reader that does not keep up; later lines reach only console.log. */
const MAX_UNREAD_LINES = 10_000;
/** Bound on console.log in the run directory. */
const MAX_LOG_BYTES = 16 * 1024 * 1024;
/** Lines kept for error messages. */
const TAIL_LINES = 30;

/** The guest's serial console: split into lines, offered as a Readable, logged to a file, tail kept. */
export class ConsoleCapture {
  readonly lines = new Readable({ objectMode: true, read() {} });
  private readonly file: WriteStream;
  private readonly splitter = new LineSplitter((line) => this.onLine(line));
  private readonly tailLines: string[] = [];
  private logBytes = 0;
  private ended = false;

  constructor(logPath: string) {
    this.file = createWriteStream(logPath, { mode: 0o600 });
    this.file.on("error", () => {
      // The run directory is being removed; the console stays readable through `lines`.
    });
  }

  push(chunk: Buffer): void {
    if (!this.ended) this.splitter.push(chunk);
  }

  end(): void {
    if (this.ended) return;
    this.splitter.flush();
    this.ended = true;
    this.lines.push(null);
    this.file.end();
  }

  /** The last lines the guest printed, for error messages. */
  tail(): string {
    return this.tailLines.join("\n");
  }

  private onLine(line: string): void {
    this.tailLines.push(line);
    if (this.tailLines.length > TAIL_LINES) this.tailLines.shift();
    if (this.logBytes < MAX_LOG_BYTES) {
      this.logBytes += line.length + 1;
      this.file.write(`${line}\n`);
    }
    if (this.lines.readableLength < MAX_UNREAD_LINES) this.lines.push(line);
  }
}
