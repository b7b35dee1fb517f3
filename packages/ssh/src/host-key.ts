import { createHash } from "node:crypto";

/** The key blob of an authorized_keys-style line ("ssh-ed25519 AAAA… comment"). */
export function hostKeyBlob(line: string): Buffer {
  const b64 = line.trim().split(/\s+/)[1];
  if (b64 === undefined || b64 === "") throw new TypeError("host key must look like 'ssh-ed25519 AAAA…'");
  return Buffer.from(b64, "base64");
}

/** The OpenSSH-style fingerprint of a key blob, safe to put in errors and logs. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}
