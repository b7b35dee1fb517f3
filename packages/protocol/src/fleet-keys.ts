import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { type Sealed, SealedSchema } from "./gen/solstice/v1/common_pb.ts";

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

export type FleetKeyErrorCode = "no_fleet_key" | "bad_fleet_key" | "unknown_key_id" | "unseal_failed";

/** A fleet key problem. Messages name key ids, never key material or plaintext. */
export class FleetKeyError extends Error {
  override readonly name = "FleetKeyError";
  readonly rawMessage: string;
  constructor(
    readonly code: FleetKeyErrorCode,
    message: string,
    readonly hint: string,
  ) {
    super(`[${code}] ${message}`);
    this.rawMessage = message;
  }
}

export interface FleetKey {
  readonly id: string;
  readonly key: Buffer;
}

/**
 * The fleet keys of one service: the first seals, every one unseals, so a key is rotated by
 * putting the new key first, keeping the old one until no sealed message with its id is left
 * on the queues, then removing it. AES-256-GCM with a random 96-bit nonce per message; the
 * caller's `context` (job id and secret name) is authenticated data, so a sealed value cannot
 * be moved to another job or name.
 */
export class FleetKeyring {
  private readonly byId: Map<string, Buffer>;
  readonly sealingKeyId: string;

  constructor(keys: readonly FleetKey[]) {
    const first = keys[0];
    if (!first) throw new FleetKeyError("no_fleet_key", "no fleet key is configured", FLEET_KEY_HINT);
    this.byId = new Map();
    for (const { id, key } of keys) {
      if (!KEY_ID.test(id)) throw new FleetKeyError("bad_fleet_key", `fleet key id "${id}" is not valid`, FORMAT_HINT);
      if (key.length !== KEY_BYTES)
        throw new FleetKeyError("bad_fleet_key", `fleet key "${id}" is not ${KEY_BYTES} bytes`, FORMAT_HINT);
      if (this.byId.has(id))
        throw new FleetKeyError("bad_fleet_key", `fleet key id "${id}" appears twice`, FORMAT_HINT);
      this.byId.set(id, key);
    }
    this.sealingKeyId = first.id;
  }

  get keyIds(): string[] {
    return [...this.byId.keys()];
  }

  seal(plaintext: string, context: string): Sealed {
    const key = this.byId.get(this.sealingKeyId) as Buffer;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, "utf8"));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
    return create(SealedSchema, { keyId: this.sealingKeyId, nonce, ciphertext: body });
  }

  unseal(sealed: Sealed, context: string): string {
    const key = this.byId.get(sealed.keyId);
    if (!key) {
      throw new FleetKeyError(
        "unknown_key_id",
        `sealed with fleet key "${sealed.keyId}", which this service does not have (it has: ${this.keyIds.join(", ")})`,
        `add the key "${sealed.keyId}" to SOLSTICE_FLEET_KEYS (or the keys file) of this service`,
      );
    }
    if (sealed.nonce.length !== NONCE_BYTES || sealed.ciphertext.length < TAG_BYTES) {
      throw new FleetKeyError("unseal_failed", `a value sealed with "${sealed.keyId}" is malformed`, UNSEAL_HINT);
    }
    const body = Buffer.from(sealed.ciphertext);
    const decipher = createDecipheriv("aes-256-gcm", key, sealed.nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context, "utf8"));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
        "utf8",
      );
    } catch {
      throw new FleetKeyError(
        "unseal_failed",
        `a value sealed with fleet key "${sealed.keyId}" does not authenticate for ${context}`,
        UNSEAL_HINT,
      );
    }
  }
}

const FLEET_KEY_HINT =
  "make one with `ciadm keys generate` and give it to every runner and orchestrator as SOLSTICE_FLEET_KEYS or SOLSTICE_FLEET_KEYS_FILE";
const FORMAT_HINT =
  "each key is `ID:BASE64` (32 bytes), one per line or comma-separated; `ciadm keys generate` makes one";
const UNSEAL_HINT = "the sealing key with that id differs between services, or the message was altered";

/** A new random fleet key in the `ID:BASE64` form the keys file and SOLSTICE_FLEET_KEYS take. */
export function generateFleetKey(id = `k${new Date().toISOString().slice(0, 10).replaceAll("-", "")}`): string {
  if (!KEY_ID.test(id)) throw new FleetKeyError("bad_fleet_key", `fleet key id "${id}" is not valid`, FORMAT_HINT);
  return `${id}:${randomBytes(KEY_BYTES).toString("base64")}`;
}

/** Parses `ID:BASE64` entries separated by newlines or commas; `#` starts a comment line. */
export function parseFleetKeys(text: string): FleetKey[] {
  const keys: FleetKey[] = [];
  for (const raw of text.split(/[\n,]/)) {
    const entry = raw.trim();
    if (!entry || entry.startsWith("#")) continue;
    const colon = entry.indexOf(":");
    const id = colon > 0 ? entry.slice(0, colon) : "";
    const material = colon > 0 ? entry.slice(colon + 1) : "";
    if (!id || !/^[A-Za-z0-9+/]+={0,2}$/.test(material)) {
      throw new FleetKeyError(
        "bad_fleet_key",
        `a fleet key entry is not \`ID:BASE64\`${id ? ` (key "${id}")` : ""}`,
        FORMAT_HINT,
      );
    }
    keys.push({ id, key: Buffer.from(material, "base64") });
  }
  return keys;
}

/**
 * The service's keyring from SOLSTICE_FLEET_KEYS (the keys themselves) or SOLSTICE_FLEET_KEYS_FILE
 * (a file of them, which should be mode 0600); undefined when neither is set, so the caller decides
 * whether running without keys is allowed (only the embedded default is).
 */
export function loadFleetKeyring(env: NodeJS.ProcessEnv = process.env): FleetKeyring | undefined {
  const inline = env.SOLSTICE_FLEET_KEYS?.trim();
  const file = env.SOLSTICE_FLEET_KEYS_FILE?.trim();
  if (!inline && !file) return undefined;
  const text = [inline ?? "", file ? readFileSync(file, "utf8") : ""].join("\n");
  return new FleetKeyring(parseFleetKeys(text));
}

/** Throws the `no_fleet_key` error services give at start-up when they have no keys. */
export function requireFleetKeyring(service: string, env: NodeJS.ProcessEnv = process.env): FleetKeyring {
  const keyring = loadFleetKeyring(env);
  if (!keyring) {
    throw new FleetKeyError(
      "no_fleet_key",
      `${service} cannot start without a fleet key: set SOLSTICE_FLEET_KEYS_FILE (a file) or SOLSTICE_FLEET_KEYS; \`ciadm keys generate\` makes one`,
      FLEET_KEY_HINT,
    );
  }
  return keyring;
}

/** The authenticated context of a job's secret: binds the sealed value to its job and name. */
export function secretContext(jobId: string, name: string): string {
  return `solstice.v1/secret/${jobId}/${name}`;
}

/** The authenticated context of a job's checkout token. */
export function checkoutTokenContext(jobId: string): string {
  return `solstice.v1/checkout-token/${jobId}`;
}

/** The authenticated context of a job's actions runtime token (ACTIONS_RUNTIME_TOKEN). */
export function runtimeTokenContext(jobId: string): string {
  return `solstice.v1/runtime-token/${jobId}`;
}

/** The authenticated context of an action archive's download token: bound to its job and `owner/name@ref`. */
export function actionTokenContext(jobId: string, reference: string): string {
  return `solstice.v1/action-token/${jobId}/${reference}`;
}
