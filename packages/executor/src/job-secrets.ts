import {
  type ActionArchive,
  actionTokenContext,
  checkoutTokenContext,
  FleetKeyError,
  type FleetKeyring,
  type JobRequest,
  secretContext,
} from "@solstice/protocol";
import type { SecretMasker } from "./secret-masker.ts";

/** A job's unsealed secrets by name; held in memory for the job's life only. */
export type JobSecrets = ReadonlyMap<string, string>;

/**
 * Unseals the job's secrets (and checkout token) and registers every value with the masker
 * before any output can leave. Fails with the FleetKeyError naming the key id when the keyring
 * lacks the sealing key.
 */
export function unsealJobSecrets(
  job: JobRequest,
  keyring: Pick<FleetKeyring, "unseal"> | undefined,
  masker: SecretMasker,
): JobSecrets {
  const secrets = new Map<string, string>();
  const sealed = job.secrets.filter((s) => s.value !== undefined);
  const archiveTokens = job.actionArchives.filter((archive) => archive.token !== undefined);
  if (sealed.length === 0 && job.checkoutToken === undefined && archiveTokens.length === 0) return secrets;
  if (!keyring) {
    throw new FleetKeyError(
      "no_fleet_key",
      `job ${job.jobId} carries sealed secrets, but this executor has no fleet key`,
      "give the service SOLSTICE_FLEET_KEYS or SOLSTICE_FLEET_KEYS_FILE with the key that sealed them",
    );
  }
  for (const secret of sealed) {
    if (!secret.value) continue;
    const value = keyring.unseal(secret.value, secretContext(job.jobId, secret.name));
    masker.add(value);
    secrets.set(secret.name, value);
  }
  const token = unsealCheckoutToken(job, keyring);
  if (token !== undefined) masker.add(token);
  // Action download tokens stay on the host, but a line that somehow held one is masked too.
  for (const archive of archiveTokens) {
    const value = unsealActionToken(job, archive, keyring);
    if (value !== undefined) masker.add(value);
  }
  return secrets;
}

/** The download token of an action archive the runner resolved, when the forge issued one. */
export function unsealActionToken(
  job: JobRequest,
  archive: ActionArchive,
  keyring: Pick<FleetKeyring, "unseal"> | undefined,
): string | undefined {
  if (!archive.token || !keyring) return undefined;
  return keyring.unseal(archive.token, actionTokenContext(job.jobId, archive.reference));
}

/** The job's own checkout token (the forge's token for this job), when the runner sent one. */
export function unsealCheckoutToken(
  job: JobRequest,
  keyring: Pick<FleetKeyring, "unseal"> | undefined,
): string | undefined {
  if (!job.checkoutToken || !keyring) return undefined;
  return keyring.unseal(job.checkoutToken, checkoutTokenContext(job.jobId));
}

/** The variables that `secretEnv` (variable → secret name) sets; a secret not sent is empty, as on GitHub. */
export function secretEnvironment(secretEnv: Record<string, string>, secrets: JobSecrets): Record<string, string> {
  return Object.fromEntries(Object.entries(secretEnv).map(([variable, name]) => [variable, secrets.get(name) ?? ""]));
}
