import { createHash, createPrivateKey } from "node:crypto";
import ssh2 from "ssh2";

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

/**
 * An OpenSSH ed25519 private key in dropbear's own key-file format, so a guest's dropbear can use
 * it without converting it (dropbearconvert costs a process and its crypto under TCG):
 * string "ssh-ed25519", then string(32-byte seed ‖ 32-byte public key), each with a 4-byte length.
 */
export function dropbearHostKey(privateKey: string): Buffer {
  const parsed = ssh2.utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key === undefined || key instanceof Error || key.type !== "ssh-ed25519") {
    throw new TypeError("the host key must be an OpenSSH ed25519 private key");
  }
  const jwk = createPrivateKey(key.getPrivatePEM()).export({ format: "jwk" });
  const seed = Buffer.from(jwk.d ?? "", "base64url");
  const publicKey = Buffer.from(jwk.x ?? "", "base64url");
  if (seed.length !== 32 || publicKey.length !== 32) throw new TypeError("the ed25519 key is not 32 + 32 bytes");
  const sized = (bytes: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes]);
  return Buffer.concat([sized(Buffer.from("ssh-ed25519")), sized(Buffer.concat([seed, publicKey]))]);
}
