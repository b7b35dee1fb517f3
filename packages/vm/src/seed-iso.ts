import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JobKeys } from "@solstice/ssh";
import { runCommand } from "./run-command.ts";

/**
 * Turns off OpenSSH's per-source penalties (9.8 and later: Debian 13, Ubuntu 24.10, Fedora 41)
 * where the guest's sshd knows them. Every connection of ours comes from the same address (the
 * user-mode network's gateway), and a boot's readiness probes hang up before authenticating:
 * counted as penalties (1 s each, refused from 15 s on), they got the host refused ("connection
 * lost before handshake") right after the guest was found ready. `bootcmd`
 * runs in cloud-init's network stage, which is ordered before sshd starts; an sshd that does not
 * know the keyword (older, or not OpenSSH) is left alone, since it would refuse to start on it.
 */
const NO_SSH_PENALTIES =
  "if grep -qsai persourcepenalties /usr/sbin/sshd; then mkdir -p /etc/ssh/sshd_config.d && " +
  "echo 'PerSourcePenalties no' > /etc/ssh/sshd_config.d/00-solstice-ci.conf; fi";

/**
 * cloud-config for a throwaway job VM: root login with the per-job client key, and the per-job host
 * key so the connection is pinned. No `ssh_pwauth`: setting it makes cloud-init restart sshd under an
 * early connection (guest-images README, finding 2).
 */
export function cloudConfig(keys: JobKeys): string {
  const indented = keys.host.privateKey
    .trim()
    .split("\n")
    .map((line) => `    ${line}`)
    .join("\n");
  return [
    "#cloud-config",
    "disable_root: false",
    "ssh_authorized_keys:",
    `  - ${keys.client.publicKey}`,
    "ssh_genkeytypes: [ed25519]",
    "ssh_keys:",
    "  ed25519_private: |",
    indented,
    `  ed25519_public: ${keys.host.publicKey}`,
    "bootcmd:",
    `  - ${JSON.stringify(NO_SSH_PENALTIES)}`,
    "",
  ].join("\n");
}

/**
 * Writes a NoCloud seed image (volume label `cidata`) to `isoPath`, mode 0600: it holds the VM's
 * private host key and is deleted with the run directory.
 */
export async function writeSeedIso(opts: {
  isoPath: string;
  workDir: string;
  keys: JobKeys;
  instanceId: string;
  hostname: string;
  signal?: AbortSignal;
}): Promise<void> {
  const src = join(opts.workDir, "seed-src");
  await mkdir(src, { mode: 0o700 });
  try {
    await writeFile(join(src, "user-data"), cloudConfig(opts.keys), { mode: 0o600 });
    await writeFile(join(src, "meta-data"), `instance-id: ${opts.instanceId}\nlocal-hostname: ${opts.hostname}\n`, {
      mode: 0o600,
    });
    // Create the image file first so genisoimage writes into a 0600 file, never a world-readable one.
    await writeFile(opts.isoPath, "", { mode: 0o600 });
    await runCommand(
      "genisoimage",
      [
        "-quiet",
        "-output",
        opts.isoPath,
        "-volid",
        "cidata",
        "-joliet",
        "-rock",
        join(src, "user-data"),
        join(src, "meta-data"),
      ],
      { timeoutMs: 30_000, ...(opts.signal ? { signal: opts.signal } : {}) },
    );
  } finally {
    await rm(src, { recursive: true, force: true });
  }
}
