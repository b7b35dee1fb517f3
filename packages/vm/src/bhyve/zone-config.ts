/** What one job's bhyve zone is made of. */
export interface ZoneConfigInput {
  zonePath: string;
  vnic: string;
  /** The clone of the golden image, e.g. rpool/solstice/vms/job-1 (a zvol). */
  diskDataset: string;
  seedIso: string;
  cpus: number;
  memoryMiB: number;
  address: { ip: string; prefixLength: number; gateway: string };
}

/**
 * The zonecfg command file of a bhyve branded zone: exclusive IP on the job's VNIC (link
 * protection holds it to its address), the clone's zvol as the boot disk, and the NoCloud seed as
 * a CD-ROM (a read-only lofs mount, which the bhyve brand needs to see the file).
 */
export function zoneConfig(input: ZoneConfigInput): string {
  const lines = [
    "create -b",
    "set brand=bhyve",
    `set zonepath=${input.zonePath}`,
    "set ip-type=exclusive",
    "set autoboot=false",
    "add net",
    `set physical=${input.vnic}`,
    `set allowed-address=${input.address.ip}/${input.address.prefixLength}`,
    `set defrouter=${input.address.gateway}`,
    "end",
    "add device",
    `set match=/dev/zvol/rdsk/${input.diskDataset}`,
    "end",
    "add fs",
    `set dir=${input.seedIso}`,
    `set special=${input.seedIso}`,
    "set type=lofs",
    "add options ro",
    "add options nodevices",
    "end",
    ...attr("bootdisk", input.diskDataset),
    ...attr("cdrom", input.seedIso),
    ...attr("ram", `${input.memoryMiB}M`),
    ...attr("vcpus", String(input.cpus)),
    "verify",
    "commit",
  ];
  return `${lines.join("\n")}\n`;
}

function attr(name: string, value: string): string[] {
  return ["add attr", `set name=${name}`, "set type=string", `set value=${value}`, "end"];
}
