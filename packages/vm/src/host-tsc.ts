import { readFileSync } from "node:fs";

/**
 * The host's TSC rate in kHz, from /proc/cpuinfo's "cpu MHz" (on hosts with a constant TSC that
 * is the TSC rate); undefined when it cannot be read, and the guest then calibrates on its own.
 */
export function hostTscKhz(cpuinfo: string = readCpuinfo()): number | undefined {
  if (!/^flags\s*:.*\bconstant_tsc\b/m.test(cpuinfo)) return undefined;
  const mhz = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(cpuinfo)?.[1];
  if (mhz === undefined) return undefined;
  const khz = Math.round(Number(mhz) * 1000);
  return Number.isFinite(khz) && khz > 0 ? khz : undefined;
}

function readCpuinfo(): string {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return "";
  }
}
