/** What a masked value becomes in output. */
export const MASK = "***";

/** Bound on values registered for one job (secrets plus `::add-mask::` values); later ones are refused. */
export const MAX_MASKED_VALUES = 1024;

/** Bound on one registered value; a longer one is refused, since carry-over buffers grow with it. */
export const MAX_MASKED_VALUE_CHARS = 64 * 1024;

/**
 * Encoded forms shorter than this are not masked on their own (a 2-character base64 fragment
 * would blank out ordinary text); the value itself is always masked, whatever its length.
 */
const MIN_DERIVED_CHARS = 4;

export type AddMaskResult = "added" | "empty" | "too_long" | "full";

/**
 * The values of one job that must never leave the host: its secrets and every `::add-mask::`
 * value. Each value is masked as written, in its common encodings (base64 at the three byte
 * alignments it can have inside longer base64 text, URL-encoded, JSON-escaped), and, when it has
 * several lines, line by line, since output arrives as lines.
 *
 * `add` is the hook for the workflow-command parser: call it with the value of an
 * `::add-mask::VALUE` line before that line is handed to `JobEventStream.line`.
 */
export class SecretMasker {
  private readonly values = new Set<string>();
  private readonly patterns = new Set<string>();
  private regex: RegExp | undefined;
  private longest = 0;

  add(value: string): AddMaskResult {
    if (value.trim() === "") return "empty";
    if (value.length > MAX_MASKED_VALUE_CHARS) return "too_long";
    if (this.values.has(value)) return "added";
    if (this.values.size >= MAX_MASKED_VALUES) return "full";
    this.values.add(value);
    this.addPattern(value);
    for (const form of encodedForms(value)) if (form.length >= MIN_DERIVED_CHARS) this.addPattern(form);
    const lines = value.split(/\r?\n/).map((l) => l.trim());
    if (lines.length > 1) {
      for (const line of lines) {
        if (line.length < MIN_DERIVED_CHARS) continue;
        this.addPattern(line);
        for (const form of encodedForms(line)) if (form.length >= MIN_DERIVED_CHARS) this.addPattern(form);
      }
    }
    this.regex = undefined;
    return "added";
  }

  /** Length of the longest masked form: a stream that may be cut must hold back one less than this. */
  get longestPattern(): number {
    return this.longest;
  }

  mask(text: string): string {
    const regex = this.compiled();
    return regex ? text.replace(regex, MASK) : text;
  }

  /**
   * Masks `text` up to a point that no masked form can straddle, given that more text of the same
   * line follows: returns the masked head and the raw tail to prepend to the next piece.
   */
  maskHead(text: string): { head: string; tail: string } {
    const regex = this.compiled();
    if (!regex) return { head: text, tail: "" };
    // Any form starting before `cut` ends inside `text`, so it is either found here or absent.
    let cut = Math.max(0, text.length - (this.longest - 1));
    let head = "";
    let from = 0;
    regex.lastIndex = 0;
    for (let m = regex.exec(text); m && m.index < cut; m = regex.exec(text)) {
      head += text.slice(from, m.index) + MASK;
      from = m.index + m[0].length;
      if (from > cut) cut = from;
    }
    head += text.slice(from, cut);
    return { head, tail: text.slice(cut) };
  }

  private addPattern(form: string): void {
    if (this.patterns.has(form)) return;
    this.patterns.add(form);
    if (form.length > this.longest) this.longest = form.length;
  }

  private compiled(): RegExp | undefined {
    if (this.patterns.size === 0) return undefined;
    // Longest first, so a value wins over its own lines and fragments.
    this.regex ??= new RegExp(
      [...this.patterns]
        .sort((a, b) => b.length - a.length)
        .map(escapeRegExp)
        .join("|"),
      "g",
    );
    return this.regex;
  }
}

/**
 * Masks one stream of a job's output line by line. A line longer than the SSH layer's bound
 * arrives in pieces marked `continued`; a secret may straddle two pieces, so the end of each such
 * piece is held back (at most the longest masked form, minus one) and masked together with the
 * next piece. The held text is bounded by MAX_MASKED_VALUE_CHARS.
 */
export class StreamMasker {
  private carry = "";

  constructor(private readonly masker: SecretMasker) {}

  /** The masked text to emit now; empty when everything is held for the next piece. */
  push(text: string, continued: boolean): string {
    const joined = this.carry + text;
    if (!continued) {
      this.carry = "";
      return this.masker.mask(joined);
    }
    const { head, tail } = this.masker.maskHead(joined);
    this.carry = tail;
    return head;
  }

  /** Whatever is held, masked; for the end of a step. */
  flush(): string {
    const rest = this.carry;
    this.carry = "";
    return rest ? this.masker.mask(rest) : "";
  }
}

function encodedForms(value: string): string[] {
  const bytes = Buffer.from(value, "utf8");
  const forms = [
    bytes.toString("base64"),
    ...[0, 1, 2].map((shift) => base64Core(bytes, shift)),
    bytes.toString("base64url"),
    encodeURIComponent(value),
    encodeURIComponent(value).replaceAll("%20", "+"),
    JSON.stringify(value).slice(1, -1),
  ];
  return forms.filter((f) => f !== value);
}

/**
 * The base64 characters that depend only on `bytes` when they sit `shift` bytes into a longer
 * buffer: the characters mixing in unknown neighbouring bits at either end are dropped.
 */
function base64Core(bytes: Buffer, shift: number): string {
  const encoded = Buffer.concat([Buffer.alloc(shift), bytes])
    .toString("base64")
    .replace(/=+$/, "");
  const total = shift + bytes.length;
  const lead = [0, 2, 3][shift] ?? 0;
  const trail = total % 3 === 0 ? 0 : 1;
  return encoded.slice(lead, encoded.length - trail);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
