import ssh2 from "ssh2";
import { fingerprint, hostKeyBlob } from "./host-key.ts";

/**
 * An authorized_keys line without options: a key type we accept, the base64 key and an optional
 * printable comment. No quote, no control character: these lines end up in a guest's
 * authorized_keys through a shell, and they come from people (the forge, the operator).
 */
const KEY_LINE =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}( [\x20-\x26\x28-\x7e]*)?$/;

/** True for a well-formed public key line whose key SSH can parse. */
export function isPublicKeyLine(line: string): boolean {
  return KEY_LINE.test(line) && !(ssh2.utils.parseKey(line) instanceof Error);
}

/** OpenSSH's SHA256 fingerprint of a public key line, e.g. for `ciadm debug list`. */
export function publicKeyFingerprint(line: string): string {
  return fingerprint(hostKeyBlob(line));
}
