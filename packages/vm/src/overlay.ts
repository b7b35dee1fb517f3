import { readFile, stat, writeFile } from "node:fs/promises";
import { runCommand } from "./run-command.ts";

/** Backing files whose blank overlay is kept; a host has a few images and templates. */
const MAX_BLANKS = 32;

/**
 * Makes each VM's copy-on-write overlay over a backing file. An empty qcow2 overlay is the same
 * bytes for every VM over the same backing (a header naming the backing and its format, an empty
 * L1 table and refcounts; qcow2 has no per-image identifier), so `qemu-img create` runs once per
 * backing file and process, and every later overlay is those bytes written with one call: a
 * restore's path loses a process start (25–60 ms measured on the 2-core test machine).
 * A backing file is known by its path, format and inode, device and size: a rebuilt image or
 * template is a new file (the builds rename into place) and gets a blank of its own; using it
 * (touching its times) does not.
 */
export class OverlayMaker {
  private readonly blanks = new Map<string, Promise<Buffer>>();

  /** `run`: how host commands run (tests count the qemu-img calls). */
  constructor(private readonly run: typeof runCommand = runCommand) {}

  /** Writes an empty overlay of `backing` at `overlayPath`. */
  async create(backing: string, backingFormat: string, overlayPath: string, signal?: AbortSignal): Promise<void> {
    const key = await this.keyOf(backing, backingFormat);
    const known = key === undefined ? undefined : this.blanks.get(key);
    if (known !== undefined) {
      const blank = await known.catch(() => undefined);
      if (blank !== undefined) {
        await writeFile(overlayPath, blank, { flag: "wx", ...(signal ? { signal } : {}) });
        return;
      }
    }
    const made = (async () => {
      await this.run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", backing, "-F", backingFormat, overlayPath], {
        timeoutMs: 30_000,
        ...(signal ? { signal } : {}),
      });
      return readFile(overlayPath);
    })();
    if (key !== undefined) this.remember(key, made);
    await made;
  }

  private async keyOf(backing: string, backingFormat: string): Promise<string | undefined> {
    const file = await stat(backing).catch(() => undefined);
    // A missing backing is qemu-img's to report.
    if (file === undefined) return undefined;
    return JSON.stringify([backing, backingFormat, file.dev, file.ino, file.size]);
  }

  private remember(key: string, blank: Promise<Buffer>): void {
    // A failed creation is not kept: the next VM tries again (and reports its own error).
    blank.catch(() => this.blanks.delete(key));
    this.blanks.set(key, blank);
    if (this.blanks.size > MAX_BLANKS) {
      const oldest = this.blanks.keys().next().value;
      if (oldest !== undefined) this.blanks.delete(oldest);
    }
  }
}
