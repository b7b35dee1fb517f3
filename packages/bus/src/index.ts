export { type Bus, type BusOptions, type ConsumeEventsOptions, connectBus } from "./bus.ts";
export type { ConnectFn, ConnectionState, ReconnectOptions } from "./connection.ts";
export {
  type DeadLetter,
  ORIGINAL_QUEUE_HEADER,
  REASON_CODE_HEADER,
  REASON_HEADER,
} from "./dead-letter.ts";
export type { ReplayResult, ReplaySelection } from "./dead-letter-admin.ts";
export {
  BusError,
  type BusErrorCode,
  BusUnavailableError,
  DeliveryLostError,
  OwnerTakenError,
  TopologyMismatchError,
  UnroutableLabelError,
} from "./errors.ts";
export type { ConsumeJobsOptions, JobConsumer, JobDelivery, JobTaking } from "./job-consumer.ts";
export { type CapacitySlotGate, createSlotGate, type SlotGate } from "./slot-gate.ts";
export type { Subscription } from "./subscription.ts";
export type { TopologyNames } from "./topology.ts";
