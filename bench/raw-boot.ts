import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { LocalImage } from "@solstice/images";
import { connectSsh, freeLocalPort, generateJobKeys, SshError, type SshTarget, waitForSshBanner } from "@solstice/ssh";
import {
  type AgentChannel,
  deliverKeys,
  hostTscKhz,
  QmpClient,
  qemuArgs,
  qemuSystemBinary,
  resumeIncoming,
  templateDiskPath,
  writeSeedIso,
} from "@solstice/vm";

/**
 * One raw QEMU boot, the baseline the benchmarks set Solstice against: the same machine, devices
 * and seed as the qemu backend, started by hand, until the readiness our backend waits for (the
 * SSH banner; plus `cloud-init status --wait` for cloud-init images). Keys, seed and overlay are
 * made before the clock starts. Images with a key agent get their keys over it (no seed), as the
 * backend gives them. Returns milliseconds from QEMU's start to ready.
 * `agentChannel`: what the agent is asked to serve on its channel (decision 0010; default "commands").
 * With `restoreFrom` (a saved state of the image, as the backend restores it): QEMU starts with
 * `-incoming`, is resumed over QMP once the state is loaded, and is ready once the guest answers
 * with its keys (job-commands' greeting or the SSH identification line on the agent's channel, or
 * READY and the banner on port 22): the raw restore our restore is measured against. Its overlay is on
 * the state's own disk layer, as the backend's restores are (the saved memory refers to it).
 * `tcgAddressRandomization` as the backend's option of that name (decision 0012).
 */
export async function rawBoot(
  image: LocalImage,
  accelerator: "kvm" | "tcg",
  opts: { restoreFrom?: string; agentChannel?: AgentChannel; tcgAddressRandomization?: boolean } = {},
): Promise<number> {
  const { restoreFrom } = opts;
  const dir = await mkdtemp(path.join(tmpdir(), "solstice-bench-raw-"));
  const qemu = { process: undefined as ReturnType<typeof spawn> | undefined };
  try {
    const keys = generateJobKeys();
    const seedPath = path.join(dir, "seed.iso");
    const agentSocket = image.keys === "agent" ? path.join(dir, "ag.sock") : undefined;
    if (agentSocket === undefined) {
      await writeSeedIso({ isoPath: seedPath, workDir: dir, keys, instanceId: randomUUID(), hostname: "bench" });
    }
    const tscKhz = hostTscKhz();
    const overlayPath = path.join(dir, "overlay.qcow2");
    const [backing, backingFormat] =
      restoreFrom !== undefined ? [templateDiskPath(restoreFrom), "qcow2"] : [image.disk, image.diskFormat];
    await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", backing, "-F", backingFormat, overlayPath]);
    const sshPort = await freeLocalPort();
    const args = qemuArgs({
      image,
      accelerator,
      cpus: image.defaultCpus,
      memoryMiB: image.defaultMemoryMiB,
      overlayPath,
      ...(agentSocket === undefined ? { seedPath } : { agentSocket }),
      qmpSocket: path.join(dir, "qmp.sock"),
      sshPort,
      ...(tscKhz !== undefined ? { hostTscKhz: tscKhz } : {}),
      ...(restoreFrom !== undefined ? { incomingState: restoreFrom } : {}),
      ...(opts.tcgAddressRandomization !== undefined ? { tcgAddressRandomization: opts.tcgAddressRandomization } : {}),
    });
    const started = performance.now();
    // The raw QEMU dies with the benchmark, even when it is interrupted.
    qemu.process = spawn("setpriv", ["--pdeathsig", "KILL", "--", qemuSystemBinary(image.arch), ...args], {
      stdio: "ignore",
    });
    const signal = AbortSignal.timeout(300_000);
    if (restoreFrom !== undefined) {
      const qmp = new QmpClient(path.join(dir, "qmp.sock"));
      try {
        await resumeIncoming(qmp, signal);
      } finally {
        qmp.close();
      }
    }
    // An agent that serves SSH on its channel has answered with the server's identification line.
    const channel =
      agentSocket !== undefined
        ? await deliverKeys({
            socketPath: agentSocket,
            keys,
            hostname: "bench",
            signal,
            ...(opts.agentChannel ? { channel: opts.agentChannel } : {}),
          })
        : undefined;
    if (channel) channel.socket.destroy();
    else await waitForSshBanner("127.0.0.1", sshPort, { deadlineMs: 300_000 });
    if (image.readiness === "cloud-init") {
      await waitForCloudInit({
        host: "127.0.0.1",
        port: sshPort,
        username: image.sshUser,
        privateKey: keys.client.privateKey,
        hostKey: keys.host.publicKey,
      });
    }
    return performance.now() - started;
  } finally {
    qemu.process?.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `cloud-init status --wait` in the guest. cloud-init restarts sshd while it configures it, which
 * cuts early connections: those are tried again, as the qemu backend does, for up to 5 minutes.
 */
async function waitForCloudInit(target: SshTarget): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      const session = await connectSsh(target);
      try {
        const result = await session.exec("cloud-init status --wait >/dev/null");
        if (result.exitCode === 0 || result.exitCode === 2) return;
        if (result.exitCode !== null) throw new Error(`cloud-init status --wait exited ${result.exitCode}`);
      } finally {
        session.close();
      }
    } catch (error) {
      if (!(error instanceof SshError) || Date.now() > deadline) throw error;
    }
    await sleep(500);
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: "ignore" });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
  });
}
