import { createHash } from "node:crypto";

/**
 * The names a job's bhyve resources get, and how the reaper recognises ours: zones and their
 * clones `solstice-<hash>-<vm name>`, VNICs `slst<hash>0` (datalink names end in a digit and
 * have at most 31 characters), seed directories `<zone>-XXXXXX`.
 */
const ZONE_PREFIX = "solstice-";
const OUR_VNIC = /^slst[0-9a-f]{8}0$/;

export interface JobNames {
  readonly zone: string;
  readonly vnic: string;
}

export function jobNames(vmName: string): JobNames {
  const tag = createHash("sha256").update(vmName).digest("hex").slice(0, 8);
  return {
    zone: `${ZONE_PREFIX}${tag}-${vmName.replace(/[^A-Za-z0-9_.-]/g, "-")}`.slice(0, 60),
    vnic: `slst${tag}0`,
  };
}

export const isOurZone = (name: string): boolean => name.startsWith(ZONE_PREFIX);
export const isOurVnic = (name: string): boolean => OUR_VNIC.test(name);
