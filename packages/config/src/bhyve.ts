import { isIP } from "node:net";
import { z } from "zod";

const dataset = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]*[A-Za-z0-9_.:-]$/, "a ZFS dataset, e.g. rpool/solstice/vms");
const ipv4 = z.string().refine((ip) => isIP(ip) === 4, "an IPv4 address");
/** illumos link names: letters, digits and underscores, ending in a digit, at most 31 characters. */
const linkName = z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,29}[0-9]$/, "an illumos link name, e.g. ixgbe0 or stub0");

/**
 * The bhyve backend's settings (`SOLSTICE_BHYVE_*`), read only when `SOLSTICE_BACKEND=bhyve`.
 * docs/illumos.md shows the host preparation they describe.
 */
export const bhyveConfigSchema = z.object({
  /** ZFS dataset under which each job's clone is made, e.g. rpool/solstice/vms. */
  bhyveCloneParent: dataset,
  /** Dataset holding one zvol per label with the golden snapshot, e.g. rpool/solstice/images. */
  bhyveImageDataset: dataset,
  /** Name of the golden snapshot of each label's zvol (default golden). */
  bhyveGoldenSnapshot: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]+$/)
    .default("golden"),
  /** Where zone roots live (default /zones). */
  bhyveZonesRoot: z.string().startsWith("/").default("/zones"),
  /** Where seed ISOs are written, readable by the zones' lofs mounts (default /var/tmp/solstice/seeds). */
  bhyveSeedRoot: z.string().startsWith("/").default("/var/tmp/solstice/seeds"),
  /** The link the jobs' VNICs are made on: an etherstub the global zone routes (recommended) or a NIC. */
  bhyveLink: linkName,
  /** The jobs' addresses on that link: `first-last/prefix`, e.g. 10.9.0.10-10.9.0.250/24. */
  bhyveAddresses: z
    .string()
    .regex(/^\d+\.\d+\.\d+\.\d+-\d+\.\d+\.\d+\.\d+\/\d{1,2}$/, "first-last/prefix, e.g. 10.9.0.10-10.9.0.250/24"),
  /** The guests' default router on that link (the global zone's address on the etherstub). */
  bhyveGateway: ipv4,
  /**
   * The global zone's interface on the etherstub that holds `bhyveGateway`, e.g. solstice0. With
   * it, ipfilter rules keep each guest off the host's own services and make `none-after-checkout`
   * possible; without it the host is not protected from the guests at the IP level and labels with
   * that policy fail their jobs.
   */
  bhyveGatewayInterface: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_]*[0-9]$/)
    .optional(),
  /** Bound on each zfs/dladm/zonecfg/zoneadm/ipf command (default 120000). */
  bhyveCommandTimeoutMs: z.coerce.number().int().positive().default(120_000),
});

export type BhyveConfig = z.output<typeof bhyveConfigSchema>;
