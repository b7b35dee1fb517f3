export type { Accelerator, AcceleratorChoice, ProbeOptions } from "./accelerator-probe.ts";
export { probeAccelerator } from "./accelerator-probe.ts";
export type { Vm, VmBackend, VmSpec } from "./backend.ts";
export type { VmErrorCode } from "./errors.ts";
export { VmError } from "./errors.ts";
export type { QemuBackend, QemuBackendOptions, QemuVm } from "./qemu-backend.ts";
export { createQemuBackend } from "./qemu-backend.ts";
export { reapRunDirs as reapOrphans } from "./run-dir.ts";
export { cloudConfig } from "./seed-iso.ts";
