export type { Accelerator, AcceleratorChoice, ProbeOptions } from "./accelerator-probe.ts";
export { probeAccelerator } from "./accelerator-probe.ts";
export type { NetworkPolicy, Vm, VmBackend, VmSpec } from "./backend.ts";
export { type AddressPool, addressPool, type JobAddress } from "./bhyve/address-pool.ts";
export type { BhyveBackendOptions } from "./bhyve/bhyve-backend.ts";
export { createBhyveBackend } from "./bhyve/bhyve-backend.ts";
export { type CommandRunner, hostCommandRunner } from "./bhyve/command-runner.ts";
export { type ZoneConfigInput, zoneConfig } from "./bhyve/zone-config.ts";
export type { VmErrorCode } from "./errors.ts";
export { VmError } from "./errors.ts";
export { qemuSystemBinary } from "./guest-machine.ts";
// Low-level pieces of a boot, for the boot benchmark's raw-QEMU baseline and the agent's tests.
export { hostTscKhz } from "./host-tsc.ts";
export {
  type AgentChannel,
  type AgentDelivery,
  agentMessage,
  deliverKeys,
  type ServedChannel,
  tellAgent,
} from "./key-agent.ts";
export { GUEST_GATEWAY_ADDRESS, type QemuArgsInput, qemuArgs } from "./qemu-args.ts";
export type { QemuBackend, QemuBackendOptions, QemuVm } from "./qemu-backend.ts";
export { createQemuBackend } from "./qemu-backend.ts";
export { QmpClient } from "./qmp.ts";
export { reapRunDirs as reapOrphans } from "./run-dir.ts";
export { cloudConfig, writeSeedIso } from "./seed-iso.ts";
export { resumeIncoming, templateDiskPath } from "./snapshot.ts";
