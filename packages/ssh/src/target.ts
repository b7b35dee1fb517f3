/** How to reach a VM over SSH, with the host key pinned: no trust on first use. */
export interface SshTarget {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** The per-job client key, OpenSSH format, in memory only. */
  readonly privateKey: string;
  /** The only host key accepted: "ssh-ed25519 AAAA…" as in an authorized_keys line. */
  readonly hostKey: string;
}
