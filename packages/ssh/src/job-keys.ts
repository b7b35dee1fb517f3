import ssh2 from "ssh2";

/** An ed25519 key pair: OpenSSH private key text and an authorized_keys-style public key line. */
export interface KeyPair {
  readonly privateKey: string;
  readonly publicKey: string;
}

export interface JobKeys {
  /** The key the orchestrator logs in with; its public half goes to `ssh_authorized_keys`. */
  readonly client: KeyPair;
  /** The guest's host key; both halves go to `ssh_keys`, the public half is pinned. */
  readonly host: KeyPair;
}

/** Fresh per-job client and host keys, generated in memory and never written anywhere by this package. */
export function generateJobKeys(): JobKeys {
  return { client: generatePair("solstice-client"), host: generatePair("solstice-host") };
}

/** Bound on regenerating a key ssh2 cannot read back; each try fails with p ≈ 0.004. */
const MAX_KEYGEN_TRIES = 8;

/**
 * ssh2's own generator now and then writes an ed25519 private key that its parser rejects
 * ("Malformed OpenSSH private key"; about 1 in 250 here, an open ssh2 bug), which would fail
 * that job's SSH login. A pair is kept only once both halves parse.
 */
function generatePair(comment: string): KeyPair {
  for (let attempt = 1; ; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment });
    const readable =
      !(ssh2.utils.parseKey(pair.private) instanceof Error) && !(ssh2.utils.parseKey(pair.public) instanceof Error);
    if (readable) return { privateKey: pair.private, publicKey: pair.public.trim() };
    if (attempt >= MAX_KEYGEN_TRIES)
      throw new Error(`could not generate a readable ed25519 key in ${MAX_KEYGEN_TRIES} tries`);
  }
}
