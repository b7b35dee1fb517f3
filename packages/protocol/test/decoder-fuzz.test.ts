import { test } from "node:test";
import fc from "fast-check";
import {
  ControlSchema,
  create,
  decodeMessage,
  encodeMessage,
  FleetKeyError,
  FleetKeyring,
  generateFleetKey,
  JobEventSchema,
  JobRequestSchema,
  parseFleetKeys,
  SCHEMA_VERSION,
  SealedSchema,
  UndecodableMessageError,
} from "../src/index.ts";

/** Cases per property; the file runs 5 × this many (10 000) in about a second. */
const RUNS = 2_000;
const SCHEMAS = [JobRequestSchema, JobEventSchema, ControlSchema] as const;

function decodesOrRefuses(run: () => unknown): boolean {
  try {
    run();
    return true;
  } catch (error) {
    return error instanceof UndecodableMessageError;
  }
}

test(`the message decoder never throws anything but UndecodableMessageError on random bytes (${RUNS * 3} cases)`, () => {
  for (const schema of SCHEMAS) {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.option(fc.string({ maxLength: 40 })), (bytes, type) =>
        decodesOrRefuses(() => decodeMessage(schema, bytes, type ?? undefined)),
      ),
      { numRuns: RUNS },
    );
  }
});

test(`the message decoder survives valid JobRequests with random bytes flipped, cut or appended (${RUNS} cases)`, () => {
  const valid = encodeMessage(
    JobRequestSchema,
    create(JobRequestSchema, {
      schemaVersion: SCHEMA_VERSION,
      jobId: "0b6f6f36-8c59-4c1f-9d3e-6d7f5d1b2a10",
      attempt: 1,
      runsOn: "tiny",
      env: { A: "b" },
      steps: [{ index: 0, name: "s", action: { case: "run", value: { script: "echo hi", shell: "sh -e {0}" } } }],
    }),
  );
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      fc.nat({ max: valid.length }),
      fc.uint8Array({ maxLength: 32 }),
      (flips, cut, tail) => {
        const bytes = Uint8Array.from(valid);
        for (const [at, value] of flips) bytes[at] = value;
        const mutated = new Uint8Array([...bytes.subarray(0, cut), ...tail]);
        return decodesOrRefuses(() => decodeMessage(JobRequestSchema, mutated, "solstice.v1.JobRequest"));
      },
    ),
    { numRuns: RUNS },
  );
});

test(`unsealing arbitrary sealed values only ever fails with a FleetKeyError (${RUNS} cases)`, () => {
  const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("k1")));
  fc.assert(
    fc.property(
      fc.constantFrom("k1", "other", ""),
      fc.uint8Array({ maxLength: 20 }),
      fc.uint8Array({ maxLength: 64 }),
      fc.string({ maxLength: 20 }),
      (keyId, nonce, ciphertext, context) => {
        try {
          keyring.unseal(create(SealedSchema, { keyId, nonce, ciphertext }), context);
          return false; // a forgery that authenticates would be a bug
        } catch (error) {
          return error instanceof FleetKeyError;
        }
      },
    ),
    { numRuns: RUNS },
  );
});
