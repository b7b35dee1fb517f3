import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { LocalImage } from "@solstice/images";
import { connectSsh, type GuestSession, generateJobKeys, HostKeyMismatchError } from "@solstice/ssh";
import { createQemuBackend, type QemuVm, reapOrphans, VmError } from "@solstice/vm";
import pino from "pino";
import { tinyImage } from "./tiny-image.ts";

const log = pino({ level: "warn" });

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

function freshRunRoot(): string {
  return join(tmpdir(), `solstice-vm-test-${randomUUID()}`);
}

describe("a VM booted by the qemu backend", { timeout: 360_000 }, () => {
  const runRoot = freshRunRoot();
  let vm: QemuVm;
  let session: GuestSession;

  before(async () => {
    const backend = createQemuBackend({ runRoot, accelerator: "tcg", log });
    vm = await backend.boot({ vmName: `test-${randomUUID()}`, image: await tinyImage(), log });
    session = await connectSsh(vm.ssh, { readyTimeoutMs: 30_000 });
  });

  after(async () => {
    session?.close();
    await vm?.destroy();
    rmSync(runRoot, { recursive: true, force: true });
  });

  test("runs a command over SSH with the pinned host key", { timeout: 30_000 }, async () => {
    const out: string[] = [];
    const result = await session.exec("echo ready; hostname", { onStdout: (l) => out.push(l) });
    assert.equal(result.exitCode, 0);
    assert.equal(out[0], "ready");
    assert.equal(vm.accelerator, "tcg");
    assert.ok(existsSync(join(vm.runDir, "console.log")));
  });

  test("the seed, with the host key pair, is off the disk once the VM is ready", () => {
    assert.ok(existsSync(vm.runDir));
    assert.equal(existsSync(join(vm.runDir, "seed.img")), false);
  });

  test("refuses a connection when the pinned host key is not the guest's", { timeout: 30_000 }, async () => {
    await assert.rejects(
      connectSsh({ ...vm.ssh, hostKey: generateJobKeys().host.publicKey }, { readyTimeoutMs: 20_000 }),
      (err) => err instanceof HostKeyMismatchError,
    );
  });

  test("the guest cannot connect to the host's PostgreSQL or RabbitMQ", { timeout: 60_000 }, async () => {
    const hostAddresses = hostIPv4Addresses();
    const targets = ["10.0.2.2", ...hostAddresses].flatMap((ip) => [`${ip}:5432`, `${ip}:5672`]);
    assert.deepEqual(
      await connectFromGuest(session, targets),
      targets.map((t) => `closed ${t}`),
    );
    // The same services are up on the host, so "closed" above is the namespace's doing.
    const { connect } = await import("node:net");
    for (const port of [5432, 5672]) {
      await new Promise<void>((resolve, reject) => {
        const s = connect(port, "127.0.0.1", () => {
          s.destroy();
          resolve();
        });
        s.on("error", reject);
      });
    }
  });

  test("the guest cannot connect to another VM on the same host", { timeout: 180_000 }, async () => {
    const backend = createQemuBackend({ runRoot, accelerator: "tcg", log });
    const other = await backend.boot({ vmName: `test-other-${randomUUID()}`, image: await tinyImage(), log });
    try {
      const hostAddresses = hostIPv4Addresses();
      // The other VM is reachable only through its SSH port forwarded on the host's loopback; its
      // guest address is the same private 10.0.2.15 in every VM's own user-mode network.
      const targets = ["10.0.2.2", "127.0.0.1", ...hostAddresses].map((ip) => `${ip}:${other.ssh.port}`);
      assert.deepEqual(
        await connectFromGuest(session, targets),
        targets.map((t) => `closed ${t}`),
      );
      // From the host the other VM answers, so "closed" above is the isolation's doing.
      const probe = await connectSsh(other.ssh, { readyTimeoutMs: 30_000 });
      probe.close();
    } finally {
      await other.destroy();
    }
  });

  test("destroy leaves no QEMU or pasta process and no run directory", { timeout: 30_000 }, async () => {
    session.close();
    await vm.destroy();
    await vm.destroy();
    assert.ok(await waitGone(vm.qemuPid, 5_000), "qemu still running");
    assert.ok(await waitGone(vm.pastaPid, 5_000), "pasta still running");
    assert.equal(existsSync(vm.runDir), false);
  });
});

test("aborting a boot stops QEMU and removes the run directory", { timeout: 60_000 }, async () => {
  const runRoot = freshRunRoot();
  const backend = createQemuBackend({ runRoot, accelerator: "tcg", log });
  const controller = new AbortController();
  const booting = backend.boot({ vmName: "aborted", image: await tinyImage(), log, signal: controller.signal });
  let qemuPid: number | undefined;
  for (let i = 0; i < 200 && qemuPid === undefined; i++) {
    await sleep(50);
    for (const dir of existsSync(runRoot) ? readdirSync(runRoot) : []) {
      const record = JSON.parse(readFileSync(join(runRoot, dir, "vm.json"), "utf8")) as { qemuPid?: number };
      qemuPid = record.qemuPid;
    }
  }
  assert.ok(qemuPid, "qemu was started");
  controller.abort();
  await assert.rejects(booting, (err) => err instanceof VmError && err.code === "aborted");
  assert.ok(await waitGone(qemuPid, 5_000));
  assert.deepEqual(readdirSync(runRoot), []);
  rmSync(runRoot, { recursive: true, force: true });
});

test("a boot whose QEMU exits at once fails fast with QEMU's error", { timeout: 60_000 }, async () => {
  const runRoot = freshRunRoot();
  const backend = createQemuBackend({ runRoot, accelerator: "tcg", log });
  const image: LocalImage = { ...(await tinyImage()), defaultMemoryMiB: 999_999_999 };
  const started = Date.now();
  await assert.rejects(backend.boot({ vmName: "broken", image, log }), (err) => {
    assert.ok(err instanceof VmError);
    assert.equal(err.code, "qemu_exited");
    assert.match(err.message, /qemu stderr/);
    return true;
  });
  assert.ok(Date.now() - started < 20_000);
  assert.deepEqual(readdirSync(runRoot), []);
  rmSync(runRoot, { recursive: true, force: true });
});

test("QEMU dies with its owner, and reapOrphans removes what the owner left", { timeout: 90_000 }, async () => {
  const runRoot = freshRunRoot();
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(import.meta.dirname, "fixtures/boot-and-hang.ts"), runRoot],
    {
      stdio: "ignore",
    },
  );
  let record: { qemuPid?: number; pastaPid?: number } = {};
  for (let i = 0; i < 400 && record.pastaPid === undefined; i++) {
    await sleep(50);
    for (const dir of existsSync(runRoot) ? readdirSync(runRoot) : []) {
      try {
        record = JSON.parse(readFileSync(join(runRoot, dir, "vm.json"), "utf8"));
      } catch {
        // Being written.
      }
    }
  }
  assert.ok(record.qemuPid && record.pastaPid, "the child started a VM");
  // The seed holds the VM's SSH host private key: only its owner may read it, and the reaper must remove it.
  const [vmDir] = readdirSync(runRoot);
  assert.ok(vmDir);
  assert.equal(statSync(join(runRoot, vmDir)).mode & 0o777, 0o700);
  const seed = join(runRoot, vmDir, "seed.img");
  // While the guest boots (once it is up the seed is deleted; see the test above).
  if (existsSync(seed)) {
    assert.equal(statSync(seed).mode & 0o777, 0o600);
    assert.match(readFileSync(seed, "latin1"), /PRIVATE KEY/, "the seed carries the host key pair");
  }
  child.kill("SIGKILL");
  assert.ok(await waitGone(record.qemuPid, 5_000), "qemu outlived its owner");
  assert.ok(await waitGone(record.pastaPid, 5_000), "pasta outlived its owner");
  assert.equal(readdirSync(runRoot).length, 1);

  // A QEMU that survived its (dead) owner, e.g. started without the parent-death signal.
  const leftover = join(runRoot, "leftover-0000");
  mkdirSync(leftover);
  const stray = spawn("qemu-system-x86_64", ["-machine", "none", "-nodefaults", "-display", "none", "-S"], {
    stdio: "ignore",
    detached: true,
  });
  assert.ok(stray.pid);
  writeFileSync(
    join(leftover, "vm.json"),
    JSON.stringify({ vmName: "leftover", ownerPid: child.pid, qemuPid: stray.pid }),
  );

  assert.equal(await reapOrphans(runRoot, log), 2);
  assert.ok(await waitGone(stray.pid, 5_000), "the leftover qemu was not killed");
  assert.deepEqual(readdirSync(runRoot), [], "the crashed owner's run directory and seed are gone");
  assert.equal(existsSync(seed), false);
  rmSync(runRoot, { recursive: true, force: true });
});

/** The host's own non-loopback IPv4 addresses: a guest must reach none of them. */
function hostIPv4Addresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === "IPv4" && !a.internal)
    .map((a) => a?.address ?? "");
}

/** Tries a TCP connection from inside the guest to each `ip:port`; one "open"/"closed" line each. */
async function connectFromGuest(session: GuestSession, targets: string[]): Promise<string[]> {
  const script = targets
    .map((t) => {
      const [ip, port] = t.split(":");
      return `if timeout 3 bash -c 'exec 3<>/dev/tcp/${ip}/${port}' 2>/dev/null; then echo "open ${t}"; else echo "closed ${t}"; fi`;
    })
    .join("\n");
  const lines: string[] = [];
  // Only stdout: a connection that hangs until `timeout` kills it also makes bash report
  // "Terminated" on stderr (seen for a container bridge's address, whose packets are dropped).
  await session.runScript({
    script,
    shell: "bash {0}",
    env: {},
    onLine: (stream, text) => {
      if (stream === "stdout") lines.push(text);
    },
  });
  return lines;
}

test("reaping leaves run directories another machine recorded (a shared disk) and takes this machine's dead ones", async () => {
  const runRoot = freshRunRoot();
  const dead = spawnSync("true").pid;
  for (const [name, machine] of [
    ["elsewhere-0000", "another-machine"],
    ["here-0000", hostname()],
  ] as const) {
    mkdirSync(join(runRoot, name), { recursive: true });
    writeFileSync(join(runRoot, name, "vm.json"), JSON.stringify({ vmName: name, machine, ownerPid: dead }));
    writeFileSync(join(runRoot, name, "seed.img"), "key material");
  }
  assert.equal(await reapOrphans(runRoot, log), 1);
  assert.deepEqual(readdirSync(runRoot), ["elsewhere-0000"], "a pid of another machine proves nothing here");
  rmSync(runRoot, { recursive: true, force: true });
});
