import type { JobStore } from "@solstice/db";
import type { GuestArch } from "@solstice/images";
import type { Logger } from "pino";
import type { ArchPlatform } from "./host-platforms.ts";

/**
 * Jobs of a label go to a host that runs its architecture under KVM while one has room: a host
 * that would emulate the label (TCG) leaves its queue alone as long as another live, undrained host
 * advertises KVM for that architecture (`x86_64=kvm,…`, host-platforms.ts), serves the label and
 * has a free slot for it. Read from the hosts and jobs tables at each host heartbeat, so a KVM host
 * that fills up, drains or goes silent hands the label back within one heartbeat; between two
 * reads a job may wait that long. Labels this host runs under KVM are never held back.
 */
export class KvmPreference {
  private deferred = new Set<string>();
  private readonly emulated: ReadonlyMap<string, GuestArch>;

  constructor(
    private readonly opts: {
      hostId: string;
      store: Pick<JobStore, "listHosts" | "listJobs">;
      platforms: Partial<Record<GuestArch, ArchPlatform>>;
      /** A host whose last heartbeat is older than this is not counted on. */
      liveWithinMs: number;
      log: Logger;
    },
  ) {
    const emulated = new Map<string, GuestArch>();
    for (const [arch, platform] of Object.entries(opts.platforms) as [GuestArch, ArchPlatform][]) {
      if (platform.accelerator === "tcg") for (const label of platform.labels) emulated.set(label, arch);
    }
    this.emulated = emulated;
  }

  /** Whether this host should leave `label`'s jobs to a KVM host now. */
  defers(label: string): boolean {
    return this.deferred.has(label);
  }

  /** Reads the fleet again; a failed read keeps the last answer (and is logged by the caller). */
  async refresh(now: Date = new Date()): Promise<void> {
    if (this.emulated.size === 0) return;
    const hosts = (await this.opts.store.listHosts()).filter(
      (h) =>
        h.id !== this.opts.hostId &&
        !h.draining &&
        now.getTime() - h.lastHeartbeatAt.getTime() <= this.opts.liveWithinMs,
    );
    const deferred = new Set<string>();
    for (const [label, arch] of this.emulated) {
      for (const host of hosts) {
        const slots = host.labels[label] ?? 0;
        if (slots === 0 || !runsUnderKvm(host.accelerator, arch)) continue;
        const running = await this.opts.store.listJobs({ state: "running", label, host: host.id, limit: slots });
        if (running.length < slots) {
          deferred.add(label);
          break;
        }
      }
    }
    const changed = [...this.emulated.keys()].filter((l) => deferred.has(l) !== this.deferred.has(l));
    this.deferred = deferred;
    for (const label of changed) {
      this.opts.log.info(
        { label, deferring: deferred.has(label) },
        deferred.has(label)
          ? `leaving ${label} to a host that runs it under KVM`
          : `taking ${label} again: no KVM host has room`,
      );
    }
  }
}

/** Whether a host record's accelerator (`x86_64=kvm,aarch64=tcg`, describePlatforms) says KVM for `arch`. */
function runsUnderKvm(accelerator: string, arch: GuestArch): boolean {
  return accelerator.split(",").includes(`${arch}=kvm`);
}
