import { VmError } from "../errors.ts";

/** One job's address on the bhyve link. */
export interface JobAddress {
  readonly ip: string;
  readonly prefixLength: number;
  readonly gateway: string;
}

/** Hands out the jobs' addresses; `release` returns one when its zone is gone. */
export interface AddressPool {
  take(vmName: string): JobAddress;
  release(ip: string): void;
}

/**
 * The addresses `first-last/prefix` (e.g. `10.9.0.10-10.9.0.250/24`) on the bhyve link, each
 * held by one job at a time. Running out is a boot failure that says how many there are.
 */
export function addressPool(range: string, gateway: string): AddressPool {
  const match = /^(\d+\.\d+\.\d+\.\d+)-(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(range);
  const first = match?.[1] ? toNumber(match[1]) : undefined;
  const last = match?.[2] ? toNumber(match[2]) : undefined;
  const prefixLength = Number(match?.[3]);
  if (first === undefined || last === undefined || last < first || prefixLength < 8 || prefixLength > 30) {
    throw new VmError("boot_failed", `not an address range: ${range}`, { hint: "e.g. 10.9.0.10-10.9.0.250/24" });
  }
  const inUse = new Set<number>();
  return {
    take() {
      for (let n = first; n <= last; n++) {
        if (inUse.has(n) || toText(n) === gateway) continue;
        inUse.add(n);
        return { ip: toText(n), prefixLength, gateway };
      }
      throw new VmError("boot_failed", `all ${last - first + 1} addresses of ${range} are in use`, {
        hint: "widen SOLSTICE_BHYVE_ADDRESSES or lower the host's capacity",
      });
    },
    release(ip) {
      const n = toNumber(ip);
      if (n !== undefined) inUse.delete(n);
    },
  };
}

function toNumber(ip: string): number | undefined {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + p, 0);
}

function toText(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}
