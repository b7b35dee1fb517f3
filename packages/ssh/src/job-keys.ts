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

function generatePair(comment: string): KeyPair {
  const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment });
  return { privateKey: pair.private, publicKey: pair.public.trim() };
}
