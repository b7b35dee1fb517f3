import assert from "node:assert/strict";
import { test } from "node:test";
import { VmError } from "../src/errors.ts";
import { unreachableAddresses } from "../src/unreachable-addresses.ts";

test("a guest's unreachable hosts become addresses: literals kept, names resolved, loopback left to the namespace", async () => {
  assert.deepEqual(await unreachableAddresses(["10.89.0.2", "[fd00::5]", "127.0.0.1", "::1", "10.89.0.2"]), [
    "10.89.0.2",
    "fd00::5",
  ]);
  // localhost resolves to loopback only, which the VM's namespace already keeps to itself.
  assert.deepEqual(await unreachableAddresses(["localhost"]), []);
});

test("a host name that does not resolve fails the boot instead of starting a guest without its rule", async () => {
  await assert.rejects(
    unreachableAddresses(["no-such-host.invalid"]),
    (err) => err instanceof VmError && err.code === "boot_failed" && /no-such-host\.invalid/.test(err.message),
  );
});
