import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { VmError } from "./errors.ts";

/** Bound on resolving one host a guest must not reach. */
const RESOLVE_DEADLINE_MS = 5_000;

/**
 * The addresses of `hosts` (names or literal addresses), resolved now: what a VM about to start must
 * not reach. Resolved at each boot rather than once, because a restarted broker or database
 * container may come back at another address. Loopback addresses are left out: inside the VM's
 * namespace they are the namespace's own. A name that does not resolve fails the boot, so a guest
 * never starts without the rule it was meant to have.
 */
export async function unreachableAddresses(hosts: readonly string[]): Promise<string[]> {
  const addresses = new Set<string>();
  for (const host of hosts) {
    const bare = host.replace(/^\[(.*)\]$/, "$1");
    if (isIP(bare)) {
      addresses.add(bare);
      continue;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const resolved = await Promise.race([
        lookup(bare, { all: true }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${RESOLVE_DEADLINE_MS} ms`)),
            RESOLVE_DEADLINE_MS,
          );
        }),
      ]);
      for (const { address } of resolved) addresses.add(address);
    } catch (err) {
      throw new VmError("boot_failed", `cannot resolve ${bare}, which the VM must not reach: ${String(err)}`, {
        hint: "check the host names in SOLSTICE_AMQP_URL and SOLSTICE_DATABASE_URL",
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
  }
  return [...addresses].filter((a) => !a.startsWith("127.") && a !== "::1");
}
