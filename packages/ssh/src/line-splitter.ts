/** Longest line handed on in one piece; longer runs are split so one endless line cannot exhaust memory. */
export const MAX_LINE_BYTES = 64 * 1024;

/**
 * Turns a byte stream into lines (split on \n, a trailing \r dropped). A partial last line is held until
 * more data or `flush()`. A line longer than `MAX_LINE_BYTES` is emitted in pieces of at most that size,
 * cut between UTF-8 characters; every piece but the last has `continued` set, so a consumer (the
 * secret masker) knows the next piece belongs to the same line.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly onLine: (line: string, continued: boolean) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      this.append(chunk.subarray(start, nl));
      this.emit();
      start = nl + 1;
    }
    if (start < chunk.length) this.append(chunk.subarray(start));
  }

  /** Emits the partial last line, if any; call when the stream ends. */
  flush(): void {
    if (this.pendingBytes > 0) this.emit();
  }

  private append(part: Buffer): void {
    let rest = part;
    while (this.pendingBytes + rest.length > MAX_LINE_BYTES) {
      let room = MAX_LINE_BYTES - this.pendingBytes;
      // Back off over UTF-8 continuation bytes (10xxxxxx) so a character is never cut in two.
      let back = 0;
      while (back < 3 && room - back > 0 && ((rest[room - back] ?? 0) & 0xc0) === 0x80) back += 1;
      if (back < 3 && room - back > 0) room -= back;
      this.pending.push(rest.subarray(0, room));
      this.pendingBytes += room;
      this.emit(true);
      rest = rest.subarray(room);
    }
    if (rest.length > 0) {
      this.pending.push(rest);
      this.pendingBytes += rest.length;
    }
  }

  private emit(continued = false): void {
    let text = Buffer.concat(this.pending, this.pendingBytes).toString("utf8");
    if (!continued && text.endsWith("\r")) text = text.slice(0, -1);
    this.pending = [];
    this.pendingBytes = 0;
    this.onLine(text, continued);
  }
}
