import { Code, ConnectError } from "@connectrpc/connect";
import { parseLabel } from "@solstice/forge-relay";
import { createForgeClient } from "./forge-client.ts";
import { RegisterError } from "./register.ts";
import { type RunnerFile, writeRunnerFile } from "./runner-file.ts";
import { RUNNER_VERSION } from "./version.ts";

export interface CreateRunnerFileOptions {
  /** The instance URL, e.g. https://forgejo.example.com. */
  instance: string;
  /** The 40 hex characters given to `forgejo forgejo-cli actions register --secret` on the server. */
  secret: string;
  name: string;
  /** Full labels, `name[:vm:fleet-label]`; only the names reach the forge. */
  labels: readonly string[];
  file: string;
  /** Declare to the forge with the new credentials, which proves the secret works (Forgejo ≥ 1.21). */
  connect?: boolean;
}

export interface CreatedRunnerFile {
  runner: RunnerFile;
  /** Whether `connect` reached the forge with the credentials; false when the forge is too old to tell. */
  verified: boolean;
}

/** Checks the offline-registration secret as Forgejo does: exactly 40 hexadecimal characters. */
export function validateSecret(secret: string): void {
  if (secret.length !== 40) {
    throw new RegisterError(
      "invalid_secret",
      `the secret must be exactly 40 characters long, not ${secret.length}`,
      "make one with `forgejo forgejo-cli actions generate-secret` (or `openssl rand -hex 20`)",
    );
  }
  if (!/^[0-9a-fA-F]{40}$/.test(secret)) {
    throw new RegisterError(
      "invalid_secret",
      "the secret must be a hexadecimal string",
      "make one with `forgejo forgejo-cli actions generate-secret` (or `openssl rand -hex 20`)",
    );
  }
}

/**
 * The runner uuid Forgejo derives from a secret: the bytes of its first 16 characters, written
 * as a uuid (so "0123456789…" gives 30313233-3435-3637-3839-303132333435).
 */
export function uuidFromSecret(secret: string): string {
  const hex = Buffer.from(secret.slice(0, 16), "latin1").toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Forgejo's offline registration: the admin runs `forgejo forgejo-cli actions register --secret S`
 * on the server, and the runner writes its `.runner` file from the same secret (uuid from the
 * secret, token = the secret) without a registration token. As the Forgejo runner, it pings the
 * forge first (with the uuid as data) and, with `connect`, declares its labels to prove the secret.
 */
export async function createRunnerFile(opts: CreateRunnerFileOptions): Promise<CreatedRunnerFile> {
  validateSecret(opts.secret);
  const labels = opts.labels.map(parseLabel);
  const uuid = uuidFromSecret(opts.secret);
  const anonymous = createForgeClient({ address: opts.instance, callTimeoutMs: 10_000 });
  try {
    await anonymous.ping.ping({ data: uuid });
  } catch (error) {
    throw new RegisterError(
      "forge_unreachable",
      `${opts.instance} does not answer the runner protocol (${ConnectError.from(error).message})`,
      "check the instance URL (the address of the forge's web UI) and that Actions are enabled",
    );
  }
  const runner: RunnerFile = {
    id: 0,
    uuid,
    name: opts.name,
    token: opts.secret,
    address: opts.instance.replace(/\/+$/, ""),
    labels: labels.map((l) => l.raw),
  };
  await writeRunnerFile(opts.file, runner);
  if (!opts.connect) return { runner, verified: false };
  const client = createForgeClient({ address: opts.instance, credentials: runner, callTimeoutMs: 10_000 });
  try {
    await client.runner.declare({ version: RUNNER_VERSION, labels: labels.map((l) => l.name) });
    return { runner, verified: true };
  } catch (error) {
    const err = ConnectError.from(error);
    if (err.code === Code.Unimplemented) return { runner, verified: false };
    throw new RegisterError(
      "registration_refused",
      `${opts.instance} does not accept runner ${uuid} with this secret (${err.rawMessage})`,
      "run `forgejo forgejo-cli actions register --secret <the same secret>` on the Forgejo server first",
    );
  }
}
