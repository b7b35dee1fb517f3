export { create, fromBinary, type MessageInitShape, toBinary, toJson } from "@bufbuild/protobuf";
export { timestampDate, timestampFromDate, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
export {
  decodeJobRequest,
  decodeMessage,
  encodeMessage,
  MESSAGE_SCHEMAS,
  type MessageTypeName,
  UndecodableMessageError,
} from "./codec.ts";
export { EventOrder } from "./event-order.ts";
export {
  actionTokenContext,
  checkoutTokenContext,
  type FleetKey,
  FleetKeyError,
  type FleetKeyErrorCode,
  FleetKeyring,
  generateFleetKey,
  loadFleetKeyring,
  parseFleetKeys,
  requireFleetKeyring,
  runtimeTokenContext,
  secretContext,
} from "./fleet-keys.ts";
export { Outcome, type Sealed, SealedSchema } from "./gen/solstice/v1/common_pb.ts";
export {
  type Cancel,
  CancelSchema,
  type Control,
  ControlSchema,
  type Drain,
  DrainSchema,
  type Undrain,
  UndrainSchema,
} from "./gen/solstice/v1/control_pb.ts";
export {
  type Accepted,
  type Heartbeat,
  type JobEvent,
  JobEventSchema,
  type JobFinished,
  type Log,
  type LogLine,
  LogLineSchema,
  LogSchema,
  LogStream,
  type StepFinished,
  type StepStarted,
} from "./gen/solstice/v1/job_event_pb.ts";
export {
  type ActionArchive,
  ActionArchiveSchema,
  type ActionsRuntime,
  ActionsRuntimeSchema,
  type Checkout,
  CheckoutSchema,
  type Contexts,
  ContextsSchema,
  type DebugAccess,
  DebugAccessSchema,
  type JobRequest,
  JobRequestSchema,
  JobSource,
  type PlannedStep,
  PlannedStepSchema,
  type Repository,
  RepositorySchema,
  type RunScript,
  RunScriptSchema,
  type SealedSecret,
} from "./gen/solstice/v1/job_request_pb.ts";
export { jobRequestProblem } from "./job-request-rules.ts";
export { majorOf, SCHEMA_VERSION, SUPPORTED_MAJOR_VERSIONS } from "./schema-version.ts";
