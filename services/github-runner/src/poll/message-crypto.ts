import { constants, createDecipheriv, type KeyObject, privateDecrypt } from "node:crypto";

/** A session's message key as the service sent it: RSA-OAEP-encrypted with the runner's key, or plain. */
export interface SessionKey {
  encrypted: boolean;
  /** base64 */
  value: string;
}

/** The AES key of a session: OAEP with SHA-1, or SHA-256 when the session uses FIPS encryption. */
export function sessionAesKey(key: SessionKey, runnerKey: KeyObject, fips: boolean): Buffer {
  const raw = Buffer.from(key.value, "base64");
  if (!key.encrypted) return raw;
  return privateDecrypt(
    { key: runnerKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: fips ? "sha256" : "sha1" },
    raw,
  );
}

/** A message body encrypted with the session key: base64 AES-CBC (PKCS#7), UTF-8 inside, maybe with a BOM. */
export function decryptBody(body: string, iv: string, aesKey: Buffer): string {
  const algorithm = `aes-${aesKey.length * 8}-cbc`;
  const decipher = createDecipheriv(algorithm, aesKey, Buffer.from(iv, "base64"));
  const plain = Buffer.concat([decipher.update(Buffer.from(body, "base64")), decipher.final()]).toString("utf8");
  return plain.replace(/^\uFEFF/, "");
}
