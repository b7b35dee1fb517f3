import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { OrchestratorConfig } from "@solstice/config";
import type { FailedVm } from "@solstice/executor";
import type { Vm } from "@solstice/vm";
import type { Logger } from "pino";

/** The job env variable a workflow sets to `true` to ask for debug SSH when the job fails. */
export const DEBUG_SSH_FLAG = "SOLSTICE_DEBUG_SSH";

/** A failed job's VM kept for debug SSH, as `ciadm debug list` shows it. */
export interface DebugSession {
  readonly jobId: string;
  readonly repository: string;
  readonly label: string;
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly hostKeyFingerprint: string;
  /** The guest's public host key, for a known_hosts line. */
  readonly hostKey: string;
  readonly expiresAt: Date;
}

interface Kept {
  readonly session: DebugSession;
  readonly vm: Vm;
  readonly timer: NodeJS.Timeout;
}

export type DebugSshPolicy = Pick<
  OrchestratorConfig,
  | "debugSshLabels"
  | "debugSshRepos"
  | "debugSshKeys"
  | "debugSshKeysFile"
  | "debugSshTtlMs"
  | "debugSshMaxVms"
  | "debugSshHost"
>;

const KEY_LINE =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/;

/**
 * Keeps a failed job's VM for debug SSH (ADR-003): only when the job asks for it (env
 * SOLSTICE_DEBUG_SSH=true) and its label or repository is opted in on this host; only for the
 * configured public keys, which replace the job's own key in the guest; for a fixed time that
 * nothing renews; at most one VM per repository and `debugSshMaxVms` in all. The VM is destroyed
 * when its time is up, by `end`, or when the orchestrator stops, whichever comes first.
 */
export class DebugSshKeeper {
  private readonly kept = new Map<string, Kept>();
  private readonly keys: string[];

  constructor(
    private readonly policy: DebugSshPolicy,
    private readonly log: Logger,
  ) {
    this.keys = readKeys(policy);
  }

  list(): DebugSession[] {
    return [...this.kept.values()].map((k) => k.session);
  }

  /** The `keepFailedVm` hook of the executor. */
  readonly keep = async ({ job, vm, session, events }: FailedVm): Promise<boolean> => {
    if (job.env[DEBUG_SSH_FLAG] !== "true") return false;
    const say = (text: string) => events.line(`Debug SSH: ${text}`, "system");
    const repository = job.repository?.fullName ?? "";
    if (!this.policy.debugSshLabels.includes(job.runsOn) && !this.policy.debugSshRepos.includes(repository)) {
      say(`asked for, but not enabled for ${repository || "this repository"} or label ${job.runsOn} on this host`);
      return false;
    }
    if (this.keys.length === 0) {
      say("asked for, but this host has no debug SSH keys configured (SOLSTICE_DEBUG_SSH_KEYS)");
      return false;
    }
    const other = [...this.kept.values()].find((k) => k.session.repository === repository);
    if (other) {
      say(
        `not kept: job ${other.session.jobId} of ${repository} already has a debug VM until ${other.session.expiresAt.toISOString()}`,
      );
      return false;
    }
    if (this.kept.size >= this.policy.debugSshMaxVms) {
      say(`not kept: this host already keeps ${this.kept.size} debug VM(s), its limit`);
      return false;
    }
    // Only the configured keys open the VM from now on; the job's own (in-memory) key no longer does.
    const authorized = `${this.keys.join("\n")}\n`;
    const install = await session.exec(
      `umask 077 && mkdir -p "$HOME/.ssh" && printf '%s' '${authorized.replaceAll("'", "")}' > "$HOME/.ssh/authorized_keys"`,
      { signal: AbortSignal.timeout(30_000) },
    );
    if (install.exitCode !== 0) throw new Error(`installing the debug keys exited with ${install.exitCode}`);

    const expiresAt = new Date(Date.now() + this.policy.debugSshTtlMs);
    const debug: DebugSession = {
      jobId: job.jobId,
      repository,
      label: job.runsOn,
      host: this.policy.debugSshHost,
      port: vm.ssh.port,
      username: vm.ssh.username,
      hostKeyFingerprint: fingerprintOf(vm.ssh.hostKey),
      hostKey: vm.ssh.hostKey,
      expiresAt,
    };
    const timer = setTimeout(() => {
      this.end(job.jobId, "its time is up").catch((error: unknown) =>
        this.log.error({ err: error, job_id: job.jobId }, "destroying an expired debug VM failed"),
      );
    }, this.policy.debugSshTtlMs);
    this.kept.set(job.jobId, { session: debug, vm, timer });
    const minutes = Math.round(this.policy.debugSshTtlMs / 60_000);
    say(
      `the failed VM is kept for ${minutes >= 1 ? `${minutes} min` : `${this.policy.debugSshTtlMs / 1000} s`}, until ${expiresAt.toISOString()} (not renewable)`,
    );
    say(
      `connect with one of the configured keys: ssh -J ${debug.host} -p ${debug.port} ${debug.username}@127.0.0.1 (the port listens on ${debug.host}'s loopback only)`,
    );
    say(`host key ${debug.hostKeyFingerprint}`);
    say(`end it early with: ciadm debug end ${job.jobId}`);
    this.log.info(
      { job_id: job.jobId, repository, expires_at: expiresAt.toISOString() },
      "failed VM kept for debug SSH",
    );
    return true;
  };

  /** Destroys a kept VM now; false when there is none for that job. */
  async end(jobId: string, why = "ended"): Promise<boolean> {
    const kept = this.kept.get(jobId);
    if (!kept) return false;
    this.kept.delete(jobId);
    clearTimeout(kept.timer);
    this.log.info({ job_id: jobId, why }, "destroying the debug VM");
    await kept.vm.destroy();
    return true;
  }

  /** Destroys every kept VM; when the orchestrator stops. */
  async endAll(): Promise<void> {
    await Promise.allSettled([...this.kept.keys()].map((id) => this.end(id, "the orchestrator stops")));
  }
}

function readKeys(policy: DebugSshPolicy): string[] {
  const text = [policy.debugSshKeys ?? "", policy.debugSshKeysFile ? readFileSync(policy.debugSshKeysFile, "utf8") : ""]
    .join("\n")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  for (const line of text) {
    if (!KEY_LINE.test(line)) throw new Error(`SOLSTICE_DEBUG_SSH_KEYS: not a public key line: ${line.slice(0, 40)}…`);
  }
  return text;
}

/** OpenSSH's SHA256 fingerprint of an authorized_keys-style public key line. */
function fingerprintOf(publicKey: string): string {
  const blob = Buffer.from(publicKey.split(" ")[1] ?? "", "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}
