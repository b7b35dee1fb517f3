export { ActionFetchError, ActionStore, type ActionStoreOptions, type FetchedAction } from "./actions/action-store.ts";
export { type HostActionProviderOptions, hostActionProvider } from "./actions/host-provider.ts";
export { type ActionProvider, MAX_COMPOSITE_DEPTH } from "./actions/job-actions.ts";
export { NodeRuntimeError, NodeRuntimeStore, type NodeRuntimeStoreOptions } from "./actions/node-runtime.ts";
export type { LocalCheckoutSource } from "./checkout-step.ts";
export { type GuestBasics, learnGuestBasics, rememberedBasics } from "./guest-facts.ts";
export { cacheScope, type JobCacheAccess } from "./job-cache-access.ts";
export { JobEventStream, type PublishEvent } from "./job-events.ts";
export { attachWarmVm, type WarmVm } from "./job-vm.ts";
export { LeaseWatch, type LeaseWatchOptions } from "./lease-watch.ts";
export { LogBatcher, type LogBatcherOptions, type OutputLine } from "./log-batcher.ts";
export {
  CLEANUP_BUDGET_MS,
  type FailedVm,
  formatDuration,
  GracefulCancel,
  type JobResult,
  type RunJobOptions,
  runJob,
  type StepResult,
} from "./run-job.ts";
export {
  type AddMaskResult,
  MASK,
  MAX_MASKED_VALUE_CHARS,
  MAX_MASKED_VALUES,
  SecretMasker,
  StreamMasker,
} from "./secret-masker.ts";
export { type Annotation, WorkflowCommandReader } from "./workflow-commands.ts";
