import { readFileSync } from "node:fs";
import type { OrchestratorConfig } from "@solstice/config";
import type { DebugSessionRecord, JobStore } from "@solstice/db";
import type { FailedVm } from "@solstice/executor";
import type { JobRequest } from "@solstice/protocol";
import { isPublicKeyLine, MAX_FORGE_KEYS, publicKeyFingerprint } from "@solstice/ssh";
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
  /** Who may log in, one entry per authorized key. */
  readonly allowed: readonly { who: string; fingerprint: string }[];
  readonly expiresAt: Date;
}

interface Kept {
  readonly session: DebugSession;
  readonly vm: Vm;
  readonly timer: NodeJS.Timeout;
}

export type DebugSshPolicy = Pick<
  OrchestratorConfig,
  | "hostId"
  | "debugSshLabels"
  | "debugSshRepos"
  | "debugSshKeys"
  | "debugSshKeysFile"
  | "debugSshTtlMs"
  | "debugSshMaxVms"
  | "debugSshHost"
>;

/**
 * Keeps a failed job's VM for debug SSH (ADR-003): only when the job asks for it (env
 * SOLSTICE_DEBUG_SSH=true) and its label or repository is opted in on this host; only for the
 * public keys of the person who triggered the job (from the forge, `JobRequest.debug_access`)
 * and those the operator configured, which replace the job's own key in the guest; for a fixed
 * time that nothing renews; at most one VM per repository and `debugSshMaxVms` in all. The VM
 * is destroyed when its time is up, by `end`, or when the orchestrator stops, whichever comes
 * first. Each kept VM is recorded in the job store for `ciadm debug list`, and forgotten there
 * when it is destroyed.
 */
export class DebugSshKeeper {
  private readonly kept = new Map<string, Kept>();
  private readonly operatorKeys: string[];

  constructor(
    private readonly policy: DebugSshPolicy,
    private readonly store: Pick<JobStore, "recordDebugSession" | "endDebugSession" | "clearDebugSessions">,
    private readonly log: Logger,
  ) {
    this.operatorKeys = readKeys(policy);
  }

  /**
   * Forgets the debug VMs this host recorded before it (re)started: QEMU died with the previous
   * process, so none of them is reachable any more.
   */
  async forgetEarlierSessions(): Promise<void> {
    const cleared = await this.store.clearDebugSessions(this.policy.hostId);
    if (cleared > 0) this.log.warn({ cleared }, "forgot debug VMs recorded by this host before it restarted");
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
    const authorized = this.authorizedKeys(job);
    if (authorized.length === 0) {
      say(
        "asked for, but nobody could log in: the forge gave no public keys for the person who triggered the job, and this host has no debug SSH keys configured (SOLSTICE_DEBUG_SSH_KEYS)",
      );
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
    // Only these keys open the VM from now on; the job's own (in-memory) key no longer does.
    // Every line passed isPublicKeyLine, which admits no quote: the single-quoted text is literal.
    const lines = `${authorized.map((k) => k.line).join("\n")}\n`;
    const install = await session.exec(
      `umask 077 && mkdir -p "$HOME/.ssh" && printf '%s' '${lines}' > "$HOME/.ssh/authorized_keys"`,
      { signal: AbortSignal.timeout(30_000) },
    );
    if (install.exitCode !== 0) throw new Error(`installing the debug keys exited with ${install.exitCode}`);

    const createdAt = new Date();
    const expiresAt = new Date(createdAt.getTime() + this.policy.debugSshTtlMs);
    const debug: DebugSession = {
      jobId: job.jobId,
      repository,
      label: job.runsOn,
      host: this.policy.debugSshHost,
      port: vm.ssh.port,
      username: vm.ssh.username,
      hostKeyFingerprint: publicKeyFingerprint(vm.ssh.hostKey),
      hostKey: vm.ssh.hostKey,
      allowed: authorized.map(({ who, fingerprint }) => ({ who, fingerprint })),
      expiresAt,
    };
    const timer = setTimeout(() => {
      this.end(job.jobId, "its time is up").catch((error: unknown) =>
        this.log.error({ err: error, job_id: job.jobId }, "destroying an expired debug VM failed"),
      );
    }, this.policy.debugSshTtlMs);
    this.kept.set(job.jobId, { session: debug, vm, timer });
    await this.store
      .recordDebugSession(toRecord(debug, this.policy.hostId, createdAt))
      .catch((error: unknown) =>
        this.log.warn({ err: error, job_id: job.jobId }, "debug VM not recorded: `ciadm debug list` will miss it"),
      );
    const minutes = Math.round(this.policy.debugSshTtlMs / 60_000);
    say(
      `the failed VM is kept for ${minutes >= 1 ? `${minutes} min` : `${this.policy.debugSshTtlMs / 1000} s`}, until ${expiresAt.toISOString()} (not renewable)`,
    );
    say(
      `connect with ${describeWho(authorized)}: ssh -J ${debug.host} -p ${debug.port} ${debug.username}@127.0.0.1 (the port listens on ${debug.host}'s loopback only)`,
    );
    say(`host key ${debug.hostKeyFingerprint}`);
    say(`end it early with: ciadm debug end ${job.jobId}`);
    this.log.info(
      { job_id: job.jobId, repository, expires_at: expiresAt.toISOString(), keys: authorized.length },
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
    try {
      await kept.vm.destroy();
    } finally {
      await this.store
        .endDebugSession(jobId)
        .catch((error: unknown) => this.log.warn({ err: error, job_id: jobId }, "debug VM record not removed"));
    }
    return true;
  }

  /** Destroys every kept VM; when the orchestrator stops. */
  async endAll(): Promise<void> {
    await Promise.allSettled([...this.kept.keys()].map((id) => this.end(id, "the orchestrator stops")));
  }

  /** The forge user's keys that are well-formed, then the operator's; each key once. */
  private authorizedKeys(job: JobRequest): { line: string; who: string; fingerprint: string }[] {
    const user = job.debugAccess?.user ?? "";
    const forgeKeys = (job.debugAccess?.publicKeys ?? []).map((line) => line.trim());
    const refused = forgeKeys.filter((line) => !isPublicKeyLine(line)).length;
    if (refused > 0) this.log.warn({ job_id: job.jobId, refused }, "ignored forge keys that are not public key lines");
    const candidates = [
      ...forgeKeys
        .filter(isPublicKeyLine)
        .slice(0, MAX_FORGE_KEYS)
        .map((line) => ({ line, who: user ? `${user} (forge)` : "the job's user (forge)" })),
      ...this.operatorKeys.map((line) => ({ line, who: "operator" })),
    ];
    const seen = new Set<string>();
    const keys: { line: string; who: string; fingerprint: string }[] = [];
    for (const candidate of candidates) {
      const fingerprint = publicKeyFingerprint(candidate.line);
      if (seen.has(fingerprint)) continue;
      seen.add(fingerprint);
      keys.push({ ...candidate, fingerprint });
    }
    return keys;
  }
}

function describeWho(keys: readonly { who: string }[]): string {
  const forge = keys.filter((k) => k.who !== "operator");
  const operator = keys.length - forge.length;
  const parts = [
    ...(forge.length > 0
      ? [`${forge[0]?.who.replace(" (forge)", "")}'s key${forge.length > 1 ? "s" : ""} from the forge`]
      : []),
    ...(operator > 0 ? [`one of the host's ${operator} debug key${operator > 1 ? "s" : ""}`] : []),
  ];
  return parts.join(" or ");
}

function toRecord(session: DebugSession, hostId: string, createdAt: Date): DebugSessionRecord {
  return {
    jobId: session.jobId,
    hostId,
    repository: session.repository,
    label: session.label,
    sshHost: session.host,
    sshPort: session.port,
    sshUser: session.username,
    hostKeyFingerprint: session.hostKeyFingerprint,
    allowed: session.allowed.map((a) => ({ ...a })),
    createdAt,
    expiresAt: session.expiresAt,
  };
}

function readKeys(policy: DebugSshPolicy): string[] {
  const text = [policy.debugSshKeys ?? "", policy.debugSshKeysFile ? readFileSync(policy.debugSshKeysFile, "utf8") : ""]
    .join("\n")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  for (const line of text) {
    if (!isPublicKeyLine(line)) {
      throw new Error(`SOLSTICE_DEBUG_SSH_KEYS: not a public key line: ${line.slice(0, 40)}…`);
    }
  }
  return text;
}
