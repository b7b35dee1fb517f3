import type { Readable } from "node:stream";
import type { GuestArch, ImageProgress, LocalImage } from "@solstice/images";
import type { GuestSession, SshTarget } from "@solstice/ssh";
import type { Logger } from "pino";

/**
 * What a job's guest may reach beyond the orchestrator's SSH session, per label: `outbound` (the
 * default; the host itself stays out of reach) or `none-after-checkout` (cut with `cutNetwork`
 * once the job's checkout steps are done).
 */
export type NetworkPolicy = "outbound" | "none-after-checkout";

/** What to boot: one fresh VM for one job attempt, or for a warm pool before its job is known. */
export interface VmSpec {
  /** Names the run directory and appears in logs; unique per job attempt (or per pooled VM). */
  readonly vmName: string;
  /**
   * Booted ahead of its job, for a warm pool: `handOver` is called before any job uses it. Its
   * keys are made in memory now, like any VM's; the guest sees no job data until the hand-over.
   */
  readonly pooled?: boolean;
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
  /** Started from a saved booted-and-idle state rather than booted (images with `snapshot`). */
  readonly restored?: boolean;
  /**
   * Names what the guest is when it becomes ready (image build and boot settings, or the saved
   * state restored): guests with the same identity answer alike until someone changes them, so
   * what one job learned about its guest (home, shell, PATH) holds for the next. Whoever changes a
   * guest before its job must drop it. Backends that cannot tell leave it out.
   */
  readonly guestIdentity?: string;
  /** Node runtimes its image has of its own (images.yaml `node:`), for JavaScript actions. */
  readonly guestNode?: LocalImage["node"];
  /**
   * Settles once the VM has stopped, on its own or through `destroy`, so a warm pool can replace
   * an idle VM that died. Backends that cannot tell leave it out.
   */
  readonly exited?: Promise<void>;
  /**
   * The session the guest served on its key agent's private channel while it booted (decision
   * 0010): the job's commands, or SSH already authenticated with `ssh`'s keys. Handed to the
   * first caller, once; undefined after that, once it has closed, or for guests that serve SSH
   * on the network only. Every other session connects to `ssh`.
   */
  takeSession?(): GuestSession | undefined;
  /**
   * Gives a VM booted with `pooled` to the job named `vmName`. A backend whose guests take their
   * keys after boot (a key agent) sends them here; one with nothing to do leaves it out.
   */
  handOver?(job: { readonly vmName: string; readonly log: Logger; readonly signal?: AbortSignal }): Promise<void>;
  /**
   * Cuts the guest off every network but the orchestrator's SSH session, for good (the label
   * policy `none-after-checkout`). A backend that cannot do it leaves it out, and a job whose
   * label asks for it then fails rather than run with the network on.
   */
  cutNetwork?(): Promise<void>;
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
  /**
   * How this host runs guests of `arch` (what it advertises to the fleet), or a VmError with a
   * hint when it cannot run them at all (its emulator is not installed). Decided without a guest
   * image; a boot still probes KVM with the image's own kernel. Backends that cannot tell leave
   * it out, and their hosts advertise no architectures.
   */
  runsArch?(arch: GuestArch, signal?: AbortSignal): Promise<{ accelerator: "kvm" | "tcg"; reason: string }>;
}
