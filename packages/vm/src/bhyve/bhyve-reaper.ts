import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { CommandRunner } from "./command-runner.ts";
import { CUT_RULES_FILE } from "./ipf-rules.ts";
import { isOurVnic, isOurZone } from "./names.ts";

/** Zone states in which a zone has a running (or half-stopped) virtual machine. */
const BOOTED = new Set(["ready", "running", "shutting_down", "down"]);

export interface BhyveReaperOptions {
  readonly runner: CommandRunner;
  readonly log: Logger;
  readonly cloneParent: string;
  readonly seedRoot: string;
}

/**
 * Removes what a crashed orchestrator left on this illumos host, through the command seam:
 * every zone named `solstice-…` (halted, uninstalled, deleted), every `slst…0` VNIC, every clone
 * `<cloneParent>/solstice-…`, and every seed directory, after taking out the ipfilter rules it
 * records. One orchestrator serves a host, so at its start-up none of these belongs to a live
 * job. A step that fails is logged and the others go on. Returns how many jobs' leftovers were
 * found (by the hash their names share).
 */
export async function reapBhyveOrphans(opts: BhyveReaperOptions): Promise<number> {
  const { runner, log } = opts;
  const cmd = (file: string, ...args: string[]) => runner.run(file, args, {});
  const jobs = new Set<string>();
  const failed: string[] = [];
  const attempt = async (what: string, run: () => Promise<unknown>) => {
    try {
      await run();
    } catch (error) {
      failed.push(what);
      log.error({ err: error, step: what }, "removing a leftover bhyve resource failed");
    }
  };

  const zones = (await cmd("zoneadm", "list", "-cp")).stdout
    .split("\n")
    .map((line) => line.split(":"))
    .map(([, name, state]) => ({ name: name ?? "", state: state ?? "" }))
    .filter((zone) => isOurZone(zone.name));
  for (const zone of zones) {
    jobs.add(tagOf(zone.name));
    if (BOOTED.has(zone.state)) await attempt(`halt ${zone.name}`, () => cmd("zoneadm", "-z", zone.name, "halt"));
    if (zone.state !== "configured") {
      await attempt(`uninstall ${zone.name}`, () => cmd("zoneadm", "-z", zone.name, "uninstall", "-F"));
    }
    await attempt(`delete ${zone.name}`, () => cmd("zonecfg", "-z", zone.name, "delete", "-F"));
  }

  const vnics = (await cmd("dladm", "show-vnic", "-p", "-o", "link")).stdout
    .split("\n")
    .map((line) => line.trim())
    .filter(isOurVnic);
  for (const vnic of vnics) {
    jobs.add(vnic.slice(4, 12));
    await attempt(`delete-vnic ${vnic}`, () => cmd("dladm", "delete-vnic", vnic));
  }

  const clones = (await cmd("zfs", "list", "-H", "-o", "name", "-d", "1", opts.cloneParent)).stdout
    .split("\n")
    .map((line) => line.trim())
    .filter((name) => name.startsWith(`${opts.cloneParent}/`) && isOurZone(name.slice(opts.cloneParent.length + 1)));
  for (const clone of clones) {
    jobs.add(tagOf(clone.slice(opts.cloneParent.length + 1)));
    await attempt(`destroy ${clone}`, () => cmd("zfs", "destroy", clone));
  }

  for (const entry of await readdir(opts.seedRoot).catch(() => [] as string[])) {
    if (!isOurZone(entry)) continue;
    jobs.add(tagOf(entry));
    const dir = join(opts.seedRoot, entry);
    const rules = join(dir, CUT_RULES_FILE);
    if (
      await stat(rules).then(
        () => true,
        () => false,
      )
    ) {
      await attempt(`ipf rules of ${entry}`, () => cmd("ipf", "-r", "-f", rules));
    }
    await attempt(`seed ${entry}`, () => rm(dir, { recursive: true, force: true }));
  }

  if (jobs.size > 0) log.warn({ jobs: jobs.size, failed }, "removed bhyve zones, VNICs, clones and seeds left behind");
  return jobs.size;
}

/** The hash part of `solstice-<hash>-…`, shared by a job's zone, clone, VNIC and seed. */
function tagOf(name: string): string {
  return name.slice("solstice-".length, "solstice-".length + 8);
}
