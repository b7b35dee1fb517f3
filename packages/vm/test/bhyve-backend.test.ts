import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { LocalImage } from "@solstice/images";
import { addressPool, type CommandRunner, createBhyveBackend, VmError } from "@solstice/vm";
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
  arch: "x86_64",
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
  /** What the command prints. */
  stdout?: string;
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
      return { stdout: next.stdout ?? "" };
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

async function backendWith(runner: CommandRunner, sshFails = false, gatewayInterface: string | null = "stub_gw0") {
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
    ...(gatewayInterface ? { gatewayInterface } : {}),
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

test("a guest whose SSH never answers is torn down completely, and the error shows its console", async () => {
  const runner = recordedRunner([
    ...bootCommands,
    {
      command: `tail -n 30 /zones/${Z}/logs/console.log`,
      // zoneadmd's console log: one JSON entry per line.
      stdout: `${JSON.stringify({ log: "Booting OmniOS r151054\n", stream: "console" })}\n${JSON.stringify({ log: "panic: no root\r\n", stream: "console" })}\nplain line\n`,
    },
    ...(undoCommands.filter(Boolean).reverse() as Expectation[]),
  ]);
  const { backend, seedRoot } = await backendWith(runner, true);
  await assert.rejects(backend.boot({ vmName: "job-1", image, log }), (error: unknown) => {
    assert.ok(error instanceof VmError);
    assert.equal(error.code, "boot_timeout");
    assert.match(error.message, /no SSH banner/);
    assert.match(
      error.message,
      /--- console \(\/zones\/solstice-[0-9a-f]{8}-job-1\/logs\/console\.log\) ---\nBooting OmniOS r151054\npanic: no root\nplain line/,
    );
    return true;
  });
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

test("cutting a VM's network adds ipfilter rules that leave only its SSH answers, removed after the zone is gone", async () => {
  let added = "";
  const [halt, uninstall, remove, ...rest] = undoCommands.filter(Boolean).reverse() as Expectation[];
  const runner = recordedRunner([
    ...bootCommands,
    {
      command: "ipf -f /.+/ipf-cut\\.add",
      check: async (args) => {
        added = await readFile(args[1] as string, "utf8");
      },
    },
    halt as Expectation,
    uninstall as Expectation,
    remove as Expectation,
    { command: "ipf -r -f /.+/ipf-cut\\.remove" },
    ...rest,
  ]);
  const { backend, seedRoot } = await backendWith(runner);
  const vm = await backend.boot({ vmName: "job-1", image, log });
  assert.ok(vm.cutNetwork);
  await vm.cutNetwork();
  await vm.cutNetwork();
  assert.equal(
    added,
    [
      "@1 pass in quick on stub_gw0 proto tcp from 10.9.0.5/32 port = 22 to 10.9.0.1/32 flags A/A",
      "@2 block in quick on stub_gw0 from 10.9.0.5/32 to any",
      "",
    ].join("\n"),
  );
  await vm.destroy();
  runner.assertDone();
  assert.deepEqual(await readdir(seedRoot), []);
});

test("a bhyve host without a gateway interface refuses to cut a VM's network, running nothing", async () => {
  const runner = recordedRunner([...bootCommands, ...(undoCommands.filter(Boolean).reverse() as Expectation[])]);
  const { backend } = await backendWith(runner, false, null);
  const vm = await backend.boot({ vmName: "job-1", image, log });
  await assert.rejects(vm.cutNetwork?.() ?? Promise.resolve(), (error: unknown) => {
    return error instanceof VmError && error.code === "unsupported" && /gateway interface/.test(error.message);
  });
  await vm.destroy();
  runner.assertDone();
});

test("at start-up the reaper removes every zone, VNIC, clone, seed and ipfilter rule set a crashed orchestrator left", async () => {
  const seedRoot = await mkdtemp(join(tmpdir(), "solstice-bhyve-"));
  dirs.push(seedRoot);
  const leftSeed = join(seedRoot, "solstice-aaaaaaaa-job-a-Xy12Zq");
  await mkdir(leftSeed);
  await writeFile(join(leftSeed, "ipf-cut.remove"), "block in quick on stub_gw0 from 10.9.0.7/32 to any\n");
  await mkdir(join(seedRoot, "solstice-bbbbbbbb-job-b-Ab34Cd"));
  await mkdir(join(seedRoot, "someone-elses"));
  const runner = recordedRunner([
    {
      command: "zoneadm list -cp",
      stdout: [
        "0:global:running:/::ipkg:shared",
        "5:solstice-aaaaaaaa-job-a:running:/zones/solstice-aaaaaaaa-job-a:1111:bhyve:excl",
        "-:solstice-bbbbbbbb-job-b:configured:/zones/solstice-bbbbbbbb-job-b::bhyve:excl",
        "-:web:installed:/zones/web:2222:ipkg:excl",
        "",
      ].join("\n"),
    },
    { command: "zoneadm -z solstice-aaaaaaaa-job-a halt" },
    { command: "zoneadm -z solstice-aaaaaaaa-job-a uninstall -F", fail: "zone busy" },
    { command: "zonecfg -z solstice-aaaaaaaa-job-a delete -F" },
    { command: "zonecfg -z solstice-bbbbbbbb-job-b delete -F" },
    { command: "dladm show-vnic -p -o link", stdout: "slstaaaaaaaa0\nweb0\nslstcccccccc0\n" },
    { command: "dladm delete-vnic slstaaaaaaaa0" },
    { command: "dladm delete-vnic slstcccccccc0" },
    {
      command: "zfs list -H -o name -d 1 rpool/solstice/vms",
      stdout: "rpool/solstice/vms\nrpool/solstice/vms/solstice-aaaaaaaa-job-a\nrpool/solstice/vms/keep-me\n",
    },
    { command: "zfs destroy rpool/solstice/vms/solstice-aaaaaaaa-job-a" },
    { command: "ipf -r -f /.+/solstice-aaaaaaaa-job-a-Xy12Zq/ipf-cut\\.remove" },
  ]);
  const backend = createBhyveBackend({
    runner,
    log,
    cloneParent: "rpool/solstice/vms",
    zonesRoot: "/zones",
    link: "stub0",
    seedRoot,
    goldenSnapshot: (i) => `rpool/solstice/images/${i.label}@golden`,
    addresses: addressPool("10.9.0.10-10.9.0.20/24", "10.9.0.1"),
    ensureImage: async () => image,
    waitForSsh: async () => undefined,
  });
  assert.equal(await backend.reapOrphans(), 3, "the leftovers of three jobs (a, b, c)");
  runner.assertDone();
  assert.deepEqual(await readdir(seedRoot), ["someone-elses"]);
});

test("the address pool hands out each address once, skips the gateway, and says when it runs out", () => {
  const pool = addressPool("10.9.0.1-10.9.0.3/24", "10.9.0.1");
  const a = pool.take("a");
  const b = pool.take("b");
  assert.deepEqual(
    [a, b],
    [
      { ip: "10.9.0.2", prefixLength: 24, gateway: "10.9.0.1" },
      { ip: "10.9.0.3", prefixLength: 24, gateway: "10.9.0.1" },
    ],
  );
  assert.throws(() => pool.take("c"), /all 3 addresses of 10\.9\.0\.1-10\.9\.0\.3\/24 are in use/);
  pool.release(a.ip);
  assert.equal(pool.take("c").ip, "10.9.0.2");
  assert.throws(() => addressPool("10.9.0.9-10.9.0.3/24", "10.9.0.1"), /not an address range/);
});
