import { createHash, randomBytes } from "node:crypto";

/** What a job's credential opens: one repository's cache scope, for as long as the job runs. */
export interface Grant {
  /** Identifies the grant (never the credential itself): owner of the job's uploads. */
  readonly id: string;
  readonly scope: string;
}

/**
 * Per-job credentials for the cache: 32 random bytes, each opening one repository's scope until
 * the job ends. Only their sha256 is kept, so a lookup compares hashes and no credential sits in
 * this process's maps.
 */
export class JobGrants {
  private readonly byHash = new Map<string, Grant>();
  private issued = 0;

  issue(scope: string): { credential: string; grant: Grant } {
    const credential = randomBytes(32).toString("base64url");
    const grant = { id: `grant-${++this.issued}`, scope };
    this.byHash.set(hashOf(credential), grant);
    return { credential, grant };
  }

  /** The grant a credential opens, or undefined for one never issued or revoked. */
  lookup(credential: string): Grant | undefined {
    return this.byHash.get(hashOf(credential));
  }

  revoke(credential: string): void {
    this.byHash.delete(hashOf(credential));
  }

  get size(): number {
    return this.byHash.size;
  }
}

function hashOf(credential: string): string {
  return createHash("sha256").update(credential).digest("hex");
}
