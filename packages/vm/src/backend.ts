import type { Readable } from "node:stream";
import type { ImageProgress, LocalImage } from "@solstice/images";
import type { SshTarget } from "@solstice/ssh";
import type { Logger } from "pino";

/** What to boot: one fresh VM for one job attempt. */
export interface VmSpec {
  /** Names the run directory and appears in logs; unique per job attempt. */
  readonly vmName: string;
  readonly image: LocalImage;
  readonly cpus?: number;
  readonly memoryMiB?: number;
  /** Aborting it stops the boot and destroys whatever was started. */
  readonly signal?: AbortSignal;
  /** Bound on boot until ready (default depends on the accelerator). */
  readonly bootTimeoutMs?: number;
  readonly log: Logger;
}

/** A running VM. `destroy` is idempotent and never throws for a VM that is already gone. */
export interface Vm {
  readonly id: string;
  readonly ssh: SshTarget;
  /** The serial console, line by line, as the guest prints it. */
  readonly console: Readable;
  readonly accelerator: "kvm" | "tcg";
  /** Milliseconds from process start to ready. */
  readonly bootMs: number;
  destroy(): Promise<void>;
}

export interface VmBackend {
  readonly name: string;
  /** Resolves a label to a bootable image on this host, building or fetching it if needed. */
  ensureImage(label: string, progress?: ImageProgress): Promise<LocalImage>;
  /** Creates the overlay and seed, starts the VM and resolves once it is ready for steps. */
  boot(spec: VmSpec): Promise<Vm>;
  /** Removes VMs and run directories a previous crash left behind; returns how many. */
  reapOrphans(): Promise<number>;
}
