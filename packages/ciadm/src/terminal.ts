/**
 * Where the CLI talks to a person. Human output goes to stdout; progress and notices to stderr,
 * so `--json` output and pipes stay clean. Colour only on a terminal, and never with NO_COLOR.
 */
export interface Terminal {
  readonly color: boolean;
  out(text: string): void;
  err(text: string): void;
  /** A transient progress line: rewritten in place on a terminal, one line each otherwise. */
  status(text: string): void;
  bold(text: string): string;
}

export function processTerminal(): Terminal {
  const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  const inPlace = Boolean(process.stderr.isTTY);
  let statusShown = false;
  let lastStatusKind = "";
  let lastStatusAt = 0;
  const clearStatus = () => {
    if (statusShown) process.stderr.write("\r\u001b[2K");
    statusShown = false;
  };
  return {
    color,
    out(text) {
      clearStatus();
      process.stdout.write(text);
    },
    err(text) {
      clearStatus();
      process.stderr.write(text);
    },
    status(text) {
      if (inPlace) {
        process.stderr.write(`\r\u001b[2K${text}`);
        statusShown = true;
      } else {
        // In a log there is no line to rewrite: print a new phase at once, and repeats of the same
        // phase (a ticking counter) at most every 10 s.
        const kind = text.replace(/[\d.]+.*$/, "");
        if (kind !== lastStatusKind || Date.now() - lastStatusAt >= 10_000) {
          process.stderr.write(`${text}\n`);
          lastStatusKind = kind;
          lastStatusAt = Date.now();
        }
      }
    },
    bold(text) {
      return color ? `\u001b[1m${text}\u001b[0m` : text;
    },
  };
}
