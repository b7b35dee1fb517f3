import { MASK, SecretMasker } from "@solstice/executor";

/**
 * What the runner masks in every line before it reaches GitHub, on top of the masking the
 * executor already did on the host: the job's secrets and tokens (and their encodings), and
 * GitHub's regex mask hints.
 */
export class JobMasker {
  private readonly values = new SecretMasker();
  private readonly patterns: RegExp[] = [];

  constructor(values: readonly string[], patterns: readonly string[]) {
    for (const value of values) this.values.add(value);
    for (const pattern of patterns.slice(0, 256)) {
      try {
        this.patterns.push(new RegExp(pattern, "g"));
      } catch {
        // An invalid hint cannot mask anything; its literal text is masked as a value instead.
        this.values.add(pattern);
      }
    }
  }

  /** A value learnt during the job (an action's download token), masked from now on. */
  add(value: string): void {
    this.values.add(value);
  }

  mask(text: string): string {
    let out = this.values.mask(text);
    for (const pattern of this.patterns) out = out.replace(pattern, MASK);
    return out;
  }
}
