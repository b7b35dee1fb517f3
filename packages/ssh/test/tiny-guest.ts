import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureLocalImage, type LocalImage } from "@solstice/images";
import { freeLocalPort, generateJobKeys, type SshTarget, waitForSshBanner } from "@solstice/ssh";
import { pino } from "pino";

/** The tiny test guest from the project's own builder, cached like any image. */
export function tinyImage(): Promise<LocalImage> {
  return ensureLocalImage("tiny", { log: pino({ level: "warn" }) });
}

export interface TestGuest {
  target: SshTarget;
  stop(): void;
}

/**
 * Boots the tiny guest with plain QEMU (this package cannot use @solstice/vm, which depends on it):
 * a NoCloud seed with fresh job keys and a forwarded SSH port.
 */
export async function bootTestGuest(): Promise<TestGuest> {
  const image = await tinyImage();
  const dir = mkdtempSync(join(tmpdir(), "solstice-ssh-test-"));
  const keys = generateJobKeys();
  const hostKey = keys.host.privateKey
    .trim()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
  writeFileSync(
    join(dir, "user-data"),
    `#cloud-config\nssh_authorized_keys:\n  - ${keys.client.publicKey}\nssh_keys:\n  ed25519_private: |\n${hostKey}\n  ed25519_public: ${keys.host.publicKey}\n`,
  );
  writeFileSync(join(dir, "meta-data"), "instance-id: ssh-test\nlocal-hostname: ssh-test\n");
  execFileSync("genisoimage", [
    "-quiet",
    "-output",
    join(dir, "seed.iso"),
    "-volid",
    "cidata",
    "-joliet",
    "-rock",
    join(dir, "user-data"),
    join(dir, "meta-data"),
  ]);
  const port = await freeLocalPort();
  const kernel = image.kernel;
  if (!kernel) throw new Error("the tiny image boots with -kernel");
  const qemu: ChildProcess = spawn(
    "qemu-system-x86_64",
    [
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-machine",
      image.machine,
      "-accel",
      "tcg",
      "-cpu",
      "max",
      "-m",
      "256",
      "-netdev",
      `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:22`,
      "-device",
      "virtio-net-pci,netdev=n0,romfile=",
      "-device",
      "virtio-rng-pci",
      ...seedDrive(join(dir, "seed.iso"), image.seedMedium),
      "-kernel",
      kernel.path,
      "-initrd",
      kernel.initrd ?? "",
      "-append",
      kernel.append,
    ],
    { stdio: "ignore" },
  );
  const stop = () => {
    qemu.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForSshBanner("127.0.0.1", port, { deadlineMs: 90_000 });
  } catch (err) {
    stop();
    throw err;
  }
  return {
    target: {
      host: "127.0.0.1",
      port,
      username: "root",
      privateKey: keys.client.privateKey,
      hostKey: keys.host.publicKey,
    },
    stop,
  };
}

function seedDrive(path: string, medium: LocalImage["seedMedium"]): string[] {
  if (medium === "cdrom") return ["-drive", `file=${path},media=cdrom,format=raw,readonly=on`];
  return ["-drive", `file=${path},if=none,id=seed0,format=raw,readonly=on`, "-device", "virtio-blk-pci,drive=seed0"];
}
