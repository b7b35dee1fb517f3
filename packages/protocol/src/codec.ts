import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { ControlSchema } from "./gen/solstice/v1/control_pb.ts";
import { JobEventSchema } from "./gen/solstice/v1/job_event_pb.ts";
import { type JobRequest, JobRequestSchema } from "./gen/solstice/v1/job_request_pb.ts";
import { jobRequestProblem } from "./job-request-rules.ts";
import { majorOf, SUPPORTED_MAJOR_VERSIONS } from "./schema-version.ts";

/** Why a message could not be taken; becomes the dead-letter reason header. */
export class UndecodableMessageError extends Error {
  override readonly name = "UndecodableMessageError";
  constructor(
    readonly code: "bad_type" | "bad_bytes" | "bad_version" | "unknown_major" | "invalid_job",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The bus messages, by the name carried in the AMQP `type` property. */
export const MESSAGE_SCHEMAS = {
  "solstice.v1.JobRequest": JobRequestSchema,
  "solstice.v1.JobEvent": JobEventSchema,
  "solstice.v1.Control": ControlSchema,
} as const;

export type MessageTypeName = keyof typeof MESSAGE_SCHEMAS;

type VersionedSchema = DescMessage & { typeName: MessageTypeName };

export function encodeMessage<S extends VersionedSchema>(schema: S, message: MessageShape<S>): Uint8Array {
  return toBinary(schema, message);
}

/**
 * Decodes bytes that claim to be `expected` and checks the schema version. Every way a message
 * can be unusable ends in an UndecodableMessageError whose message says why.
 */
export function decodeMessage<S extends VersionedSchema>(
  schema: S,
  bytes: Uint8Array,
  typeProperty: string | undefined,
): MessageShape<S> {
  if (typeProperty !== undefined && typeProperty !== schema.typeName) {
    throw new UndecodableMessageError("bad_type", `expected a ${schema.typeName}, got type "${typeProperty}"`);
  }
  let message: MessageShape<S>;
  try {
    message = fromBinary(schema, bytes);
  } catch (cause) {
    throw new UndecodableMessageError(
      "bad_bytes",
      `not a ${schema.typeName}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
  const version = (message as { schemaVersion?: unknown }).schemaVersion;
  const major = typeof version === "string" ? majorOf(version) : undefined;
  if (major === undefined) {
    throw new UndecodableMessageError(
      "bad_version",
      `${schema.typeName} has no valid schema_version (got "${String(version)}")`,
    );
  }
  if (!SUPPORTED_MAJOR_VERSIONS.includes(major)) {
    throw new UndecodableMessageError(
      "unknown_major",
      `${schema.typeName} schema_version ${String(version)} has major ${major}; this build reads ${SUPPORTED_MAJOR_VERSIONS.join(", ")}`,
    );
  }
  return message;
}

/**
 * Decodes a JobRequest and checks its fields against the rules a host relies on (job-request-rules.ts),
 * so a job no host could run or answer for is refused as `invalid_job` before anything records it.
 */
export function decodeJobRequest(bytes: Uint8Array, typeProperty: string | undefined): JobRequest {
  const job = decodeMessage(JobRequestSchema, bytes, typeProperty);
  const problem = jobRequestProblem(job);
  if (problem !== undefined) throw new UndecodableMessageError("invalid_job", `invalid JobRequest: ${problem}`);
  return job;
}
