import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { LocalImage } from "@solstice/images";
import { type CommandRunner, createBhyveBackend, VmError } from "@solstice/vm";
import { pino } from "pino";

const log = pino({ level: "silent" });
const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const image: LocalImage = {
  label: "omnios-stable",
  disk: "/unused",
  diskFormat: "raw",
  machine: "q35",
  seedMedium: "cdrom",
  readiness: "ssh",
  sshUser: "root",
  defaultCpus: 2,
  defaultMemoryMiB: 2048,
  recipeHash: "download-0000000000000000",
};

/** One recorded command: what the backend must run next, and what the host answers. */
interface Expectation {
  command: string;
  fail?: string;
  /** Called with the real arguments (e.g. to read the zonecfg file while it exists). */
  check?: (args: readonly string[]) => Promise<void>;
}

/** Replays expectations in order; anything else, or anything left over, fails the test. */
function recordedRunner(expected: Expectation[]): CommandRunner & { ran: string[]; assertDone(): void } {
  const ran: string[] = [];
  return {
    ran,
    async run(file, args) {
      const line = [file, ...args].join(" ");
      ran.push(line);
      const next = expected.shift();
      assert.ok(next, `unexpected command: ${line}`);
      const pattern = new RegExp(`^${next.command}$`);
      assert.match(line, pattern);
      await next.check?.(args);
      if (next.fail) throw new VmError("command_failed", `${file}: ${next.fail}`);
      return { stdout: "" };
    },
    assertDone() {
      assert.deepEqual(expected, [], "every recorded command ran");
    },
  };
}

const Z = "solstice-[0-9a-f]{8}-job-1";
const V = "slst[0-9a-f]{8}0";
const bootCommands: Expectation[] = [
  { command: `zfs clone rpool/solstice/images/omnios-stable@golden rpool/solstice/vms/${Z}` },
  { command: `dladm create-vnic -l ixgbe0 ${V}` },
  { command: `mkisofs -quiet -o /.+/seed.iso -V cidata -J -R /.+/src` },
  { command: `zonecfg -z ${Z} -f /.+/zone.cfg` },
  { command: `zoneadm -z ${Z} install` },
  { command: `zoneadm -z ${Z} boot` },
];
/** Undo of boot step i (the same index), run newest first. */
const undoCommands: (Expectation | undefined)[] = [
  { command: `zfs destroy rpool/solstice/vms/${Z}` },
  { command: `dladm delete-vnic ${V}` },
  undefined, // the seed is files, removed without a command
  { command: `zonecfg -z ${Z} delete -F` },
  { command: `zoneadm -z ${Z} uninstall -F` },
  { command: `zoneadm -z ${Z} halt` },
];

/** "zoneadm install", "dladm create-vnic": the command and its subcommand. */
function stepName(step: Expectation): string {
  const words = step.command.split(" ");
  if (words[1] === "-z") return `${words[0]} ${words[3] === "-f" ? "-f" : words[3]}`;
  return words[0] === "mkisofs" ? "mkisofs" : `${words[0]} ${words[1]}`;
}

async function backendWith(runner: CommandRunner, sshFails = false) {
  const seedRoot = await mkdtemp(join(tmpdir(), "solstice-bhyve-"));
  dirs.push(seedRoot);
  const released: string[] = [];
  const backend = createBhyveBackend({
    runner,
    log,
    cloneParent: "rpool/solstice/vms",
    zonesRoot: "/zones",
    link: "ixgbe0",
    seedRoot,
    goldenSnapshot: (i) => `rpool/solstice/images/${i.label}@golden`,
    addresses: {
      take: () => ({ ip: "10.9.0.5", prefixLength: 24, gateway: "10.9.0.1" }),
      release: (ip) => released.push(ip),
    },
    ensureImage: async () => image,
    waitForSsh: async () => {
      if (sshFails) throw new VmError("boot_timeout", "no SSH banner from 10.9.0.5:22");
    },
  });
  return { backend, seedRoot, released };
}

test("a bhyve job zone is configured, installed, booted and reached over SSH, and destroy removes all of it", async () => {
  let config = "";
  const runner = recordedRunner([
    ...bootCommands.slice(0, 3),
    {
      ...(bootCommands[3] as Expectation),
      check: async (args) => {
        config = await readFile(args[3] as string, "utf8");
      },
    },
    ...bootCommands.slice(4),
    ...(undoCommands.filter(Boolean).reverse() as Expectation[]),
  ]);
  const { backend, seedRoot, released } = await backendWith(runner);
  const vm = await backend.boot({ vmName: "job-1", image, log });
  assert.equal(vm.ssh.host, "10.9.0.5");
  assert.equal(vm.ssh.username, "root");
  assert.match(vm.ssh.hostKey, /^ssh-ed25519 /);
  for (const line of [
    "set brand=bhyve",
    /set zonepath=\/zones\/solstice-[0-9a-f]{8}-job-1/,
    "set ip-type=exclusive",
    /set physical=slst[0-9a-f]{8}0/,
    "set allowed-address=10.9.0.5/24",
    /set match=\/dev\/zvol\/rdsk\/rpool\/solstice\/vms\/solstice-[0-9a-f]{8}-job-1/,
    /set name=bootdisk\nset type=string\nset value=rpool\/solstice\/vms\/solstice-/,
    /set name=cdrom\nset type=string\nset value=\/.+\/seed\.iso/,
    "set name=ram\nset type=string\nset value=2048M",
    "set name=vcpus\nset type=string\nset value=2",
  ]) {
    if (typeof line === "string") assert.ok(config.includes(line), `zonecfg has "${line}"`);
    else assert.match(config, line);
  }
  await vm.destroy();
  await vm.destroy();
  runner.assertDone();
  assert.deepEqual(await readdir(seedRoot), [], "the seed (with the VM's private host key) is gone");
  assert.deepEqual(released, ["10.9.0.5"]);
});

for (const [index, step] of bootCommands.entries()) {
  test(`a failure at "${stepName(step)}" undoes every earlier step and leaves nothing behind`, async () => {
    const undo = undoCommands.slice(0, index).filter(Boolean).reverse() as Expectation[];
    const runner = recordedRunner([...bootCommands.slice(0, index), { ...step, fail: "simulated failure" }, ...undo]);
    const { backend, seedRoot, released } = await backendWith(runner);
    await assert.rejects(backend.boot({ vmName: "job-1", image, log }), (error: unknown) => {
      return error instanceof VmError && /simulated failure/.test(error.message);
    });
    runner.assertDone();
    assert.deepEqual(await readdir(seedRoot), []);
    assert.deepEqual(released, ["10.9.0.5"]);
  });
}

test("a guest whose SSH never answers is torn down completely", async () => {
  const runner = recordedRunner([...bootCommands, ...(undoCommands.filter(Boolean).reverse() as Expectation[])]);
  const { backend, seedRoot } = await backendWith(runner, true);
  await assert.rejects(backend.boot({ vmName: "job-1", image, log }), /no SSH banner/);
  runner.assertDone();
  assert.deepEqual(await readdir(seedRoot), []);
});

test("destroy goes on past a failing step and names what it could not remove", async () => {
  const [halt, uninstall, ...rest] = undoCommands.filter(Boolean).reverse() as Expectation[];
  const runner = recordedRunner([
    ...bootCommands,
    { ...(halt as Expectation), fail: "zone not running" },
    uninstall as Expectation,
    ...rest,
  ]);
  const { backend } = await backendWith(runner);
  const vm = await backend.boot({ vmName: "job-1", image, log });
  await assert.rejects(vm.destroy(), /could not remove: zone boot/);
  runner.assertDone();
});
