import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ensureImage, type LocalImage } from "@solstice/images";
import {
  ChannelSession,
  connectSsh,
  freeLocalPort,
  type GuestSession,
  generateJobKeys,
  HostKeyMismatchError,
  waitForSshBanner,
} from "@solstice/ssh";
import {
  agentMessage,
  createQemuBackend,
  deliverKeys,
  hostTscKhz,
  type QemuVm,
  qemuArgs,
  tellAgent,
} from "@solstice/vm";
import pino from "pino";

const log = pino({ level: "warn" });
const runRoot = join(tmpdir(), `solstice-fast-${randomUUID().slice(0, 8)}`);
after(() => rmSync(runRoot, { recursive: true, force: true }));

/** The tiny-fast image as the catalog boots it (microvm, PVH, key agent, snapshot). */
const fastImage = (): Promise<LocalImage> => ensureImage("tiny-fast", { log });

/**
 * Runs `script` in the guest over SSH with the VM's pinned host key; stdout lines. The session
 * the guest served on its agent's channel when there is one (the job's), else one over TCP.
 */
async function run(vm: QemuVm, script: string, given?: GuestSession): Promise<string[]> {
  const session = given ?? vm.takeSession?.() ?? (await connectSsh(vm.ssh, { readyTimeoutMs: 30_000 }));
  try {
    const out: string[] = [];
    const result = await session.exec(script, { onStdout: (l) => out.push(l) });
    assert.equal(result.exitCode, 0);
    return out;
  } finally {
    session.close();
  }
}

describe("tiny-fast", { timeout: 600_000 }, () => {
  test("boots cold on microvm through the PVH kernel and takes its keys from the agent", async () => {
    const image = await fastImage();
    assert.equal(image.machine, "microvm");
    assert.ok(image.kernel?.pvh, "the Debian kernel has a PVH note, so the recipe extracted vmlinux");
    const backend = createQemuBackend({ runRoot, accelerator: "tcg", log, snapshots: false });
    const vm = await backend.boot({ vmName: "fast-cold", image, log });
    try {
      assert.equal(vm.restored, false);
      const [cmdline, pci, hostname, keys] = await run(
        vm,
        "cat /proc/cmdline; ls /sys/bus/pci/devices 2>/dev/null | wc -l; hostname; wc -l < /root/.ssh/authorized_keys",
      );
      assert.match(cmdline ?? "", /tsc_early_khz=\d+/);
      assert.doesNotMatch(cmdline ?? "", /mitigations=/);
      assert.equal(pci, "0", "microvm has no PCI devices");
      assert.equal(hostname, "fast-cold");
      assert.equal(keys, "1");
    } finally {
      await vm.destroy();
    }
  });

  test("two guests restored from one snapshot differ in random output and host key", async () => {
    const image = await fastImage();
    const backend = createQemuBackend({ runRoot, accelerator: "tcg", log });
    const seen: { random: string; hostKey: string; hostname: string }[] = [];
    // One guest at a time: this machine's other tests run VMs too.
    for (const name of ["fast-restore-a", "fast-restore-b"]) {
      const vm = await backend.boot({ vmName: name, image, log });
      try {
        assert.equal(vm.restored, true);
        // The job's commands came up on the agent's private channel before boot returned
        // (decision 0010); only one caller gets the session.
        const channelSession = vm.takeSession?.();
        assert.ok(
          channelSession instanceof ChannelSession,
          "the restored guest served the job's commands on its agent's channel",
        );
        assert.ok(channelSession.open);
        assert.equal(vm.takeSession?.(), undefined, "the channel's session is handed out once");
        const [random, hostname, skew] = await run(
          vm,
          `head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; hostname; echo $(( $(date +%s) - ${Math.floor(Date.now() / 1000)} ))`,
          channelSession,
        );
        assert.match(random ?? "", /^[0-9a-f]{32}$/);
        // The template's clock is minutes old by now; TIME set it to the host's.
        assert.ok(Math.abs(Number(skew)) <= 30, `guest clock off by ${skew} s`);
        seen.push({ random: random ?? "", hostKey: vm.ssh.hostKey, hostname: hostname ?? "" });
      } finally {
        await vm.destroy();
      }
    }
    const [a, b] = seen;
    assert.ok(a && b);
    assert.notEqual(a.random, b.random, "restored clones produced the same /dev/urandom bytes");
    // Each login above pinned its own host key, so each guest served the key it was given.
    assert.notEqual(a.hostKey, b.hostKey);
    assert.deepEqual([a.hostname, b.hostname], ["fast-restore-a", "fast-restore-b"]);
  });

  // The agent is the guest's only source of keys and fresh entropy: a message missing either
  // must leave the guest without SSH, never with a random host key or a clone's CRNG.
  for (const missing of ["RESEED", "HOSTKEY_DB"]) {
    test(`an agent given no ${missing} refuses to start SSH and says why`, async () => {
      const image = await fastImage();
      const items = agentMessage(generateJobKeys(), "agent-refuses")
        .split("\n")
        .filter((line) => !line.startsWith(`${missing} `));
      const vm = await bootByHand(image);
      try {
        const answer = await tellAgent(vm.agentSocket, items.join("\n"), AbortSignal.timeout(120_000));
        assert.equal(answer, `FAILED no-${missing === "RESEED" ? "reseed" : "hostkey"}`);
        // While the guest still runs: QEMU accepts the connection, but no SSH server answers it.
        await assert.rejects(waitForSshBanner("127.0.0.1", vm.sshPort, { deadlineMs: 3_000 }));
      } finally {
        vm.stop();
      }
    });
  }

  test("the session on the agent's channel is SSH with the pinned host key; port 22 serves the same keys for debug access", async () => {
    const image = await fastImage();
    const keys = generateJobKeys();
    const vm = await bootByHand(image);
    try {
      const signal = AbortSignal.timeout(120_000);
      const target = {
        host: "127.0.0.1",
        port: vm.sshPort,
        username: "root",
        privateKey: keys.client.privateKey,
        hostKey: keys.host.publicKey,
      };
      const channel = await deliverKeys({
        socketPath: vm.agentSocket,
        keys,
        hostname: "channel-pin",
        signal,
        channel: "ssh",
      });
      assert.equal(channel?.kind, "ssh", "an agent told SESSION answers with an SSH server on its channel");
      // A client that expects another host key is refused on the channel as over TCP.
      await assert.rejects(
        connectSsh({ ...target, hostKey: generateJobKeys().host.publicKey }, { sock: channel.socket, signal }),
        HostKeyMismatchError,
      );
      // The listener on port 22 starts beside the session, at low priority: it serves the keys
      // the agent was given, and only them.
      await waitForSshBanner("127.0.0.1", vm.sshPort, { deadlineMs: 60_000 });
      const session = await connectSsh(target, { signal });
      try {
        const out: string[] = [];
        assert.equal((await session.exec("hostname", { onStdout: (l) => out.push(l) })).exitCode, 0);
        assert.deepEqual(out, ["channel-pin"]);
      } finally {
        session.close();
      }
      await assert.rejects(connectSsh({ ...target, privateKey: generateJobKeys().client.privateKey }, { signal }));
    } finally {
      vm.stop();
    }
  });
});

/**
 * Boots the image by hand (as the backend would, TCG, no snapshot), for a test that talks to its
 * key agent itself; the VM runs until `stop`.
 */
async function bootByHand(image: LocalImage): Promise<{ agentSocket: string; sshPort: number; stop(): void }> {
  const dir = join(runRoot, `agent-${randomUUID().slice(0, 8)}`);
  mkdirSync(dir, { recursive: true });
  const overlayPath = join(dir, "overlay.qcow2");
  await new Promise<void>((resolve, reject) => {
    const child = spawn("qemu-img", [
      "create",
      "-q",
      "-f",
      "qcow2",
      "-b",
      image.disk,
      "-F",
      image.diskFormat,
      overlayPath,
    ]);
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`qemu-img exited ${code}`))));
  });
  const sshPort = await freeLocalPort();
  const agentSocket = join(dir, "ag.sock");
  const tscKhz = hostTscKhz();
  const args = qemuArgs({
    image,
    accelerator: "tcg",
    cpus: image.defaultCpus,
    memoryMiB: image.defaultMemoryMiB,
    overlayPath,
    agentSocket,
    qmpSocket: join(dir, "qmp.sock"),
    sshPort,
    ...(tscKhz !== undefined ? { hostTscKhz: tscKhz } : {}),
  });
  const qemu = spawn("setpriv", ["--pdeathsig", "KILL", "--", "qemu-system-x86_64", ...args], { stdio: "ignore" });
  return { agentSocket, sshPort, stop: () => qemu.kill("SIGKILL") };
}
