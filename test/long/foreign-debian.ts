import assert from "node:assert/strict";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ensureImage } from "@solstice/images";
import { connectSsh } from "@solstice/ssh";
import { createQemuBackend } from "@solstice/vm";
import { pino } from "pino";
import { projectRoot, runCiadm } from "../support/ciadm.ts";
import { leftovers } from "../support/fleet.ts";
import { type GitHttpServer, startGitHttpServer } from "../support/git-http-server.ts";
import { commitAll, initRepository } from "../support/git-repository.ts";

// Not in scripts/test.sh: building these images emulates a whole Debian installation under TCG
// (docs/architectures.md has the build times; decision 0013). `corepack pnpm test:debian-arm64` and
// `test:debian-riscv64` (scripts/test-debian-foreign.sh) run one label's file and the run-step
// conformance cases on its image.

/** One full Debian guest of another architecture, and what its example job prints there. */
export interface ForeignDebianGuest {
  readonly label: string;
  /** The example workflow in examples/ that runs on it. */
  readonly example: string;
  /** What the guest's `uname -m` says and RUNNER_ARCH makes of it. */
  readonly unameM: string;
  readonly runnerArch: string;
  readonly debianMajor: number;
  /** `apt --version`'s line, as a pattern: apt's version and Debian's name of the arch. */
  readonly apt: RegExp;
  /** `gcc -dumpmachine`. */
  readonly gccTriple: string;
  /** The major of the image's own Node (images.yaml `node:`), when it declares one. */
  readonly ownNode?: number;
}

// A node20 JavaScript action, served by a git server on loopback (the host fetches it; the guest
// never reaches the server).
const WHERE_JS = {
  "action.yml": "name: where\nruns:\n  using: node20\n  main: index.js\n",
  "index.js":
    'console.log("action on node " + process.version + " for " + process.arch + " at " + process.execPath);\n',
};

const quiet = pino({ level: "silent" });

/** One connection that reads the SSH server's identification line and hangs up, as a probe does. */
function bannerThenHangUp(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no SSH identification line from ${host}:${port} in 30 s`));
    }, 30_000);
    socket.on("data", (chunk: Buffer) => {
      if (!chunk.toString("latin1").startsWith("SSH-")) return;
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      reject(new Error(`${host}:${port} closed the connection without an SSH identification line (refused)`));
    });
  });
}

export function describeForeignDebian(guest: ForeignDebianGuest): void {
  const { label } = guest;
  describe(`a job on ${label}, a full Debian ${guest.debianMajor} for ${guest.unameM} (ciadm run, TCG on this machine)`, {
    timeout: 4 * 60 * 60_000,
  }, () => {
    let repo: string;
    let runDir: string;
    before(async () => {
      repo = await mkdtemp(path.join(tmpdir(), `solstice-${label}-`));
      runDir = await mkdtemp(path.join(tmpdir(), `solstice-${label}-vms-`));
      await initRepository(repo);
      await copyFile(path.join(projectRoot, "examples", guest.example), path.join(repo, guest.example));
      await commitAll(repo, "first");
    });
    after(async () => {
      await rm(repo, { recursive: true, force: true });
      await rm(runDir, { recursive: true, force: true });
    });

    test("the image is built (or found in the cache) the way a job would make it", async () => {
      const started = Date.now();
      const prepare = await runCiadm(["images", "prepare", label], projectRoot);
      assert.equal(prepare.code, 0, prepare.stdout + prepare.stderr);
      assert.match(prepare.stdout, new RegExp(`^${label}: ready at .*/disk\\.qcow2$`, "m"));
      console.log(`# ${label} ready in ${Math.round((Date.now() - started) / 1000)} s`);
    });

    test(`examples/${guest.example} runs: uname, Debian's version, apt and gcc`, async () => {
      const run = await runCiadm(["run", guest.example, "--run-dir", runDir], repo);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(
        run.stdout,
        new RegExp(`uname -m = ${guest.unameM}, RUNNER_ARCH = ${guest.runnerArch}, Debian ${guest.debianMajor}\\.\\d+`),
      );
      assert.match(run.stdout, guest.apt);
      assert.match(run.stdout, new RegExp(`hello from C, built by gcc for ${guest.gccTriple}`));
      assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
    });

    // OpenSSH 9.8 and later refuse a source address for a while once its connections that hang
    // up unauthenticated add up to 15 s of penalty (1 s each); all of the host's come from one
    // address, and a boot's readiness probes are such connections. The job's seed turns the
    // penalties off (seed-iso.ts); without it trixie's OpenSSH 10 shut the host out (checked).
    // bookworm's OpenSSH 9.2 has no penalties: there the test shows only that the seed harms nothing.
    test("the guest's sshd still lets the host in after 20 connections that hung up before authenticating", async (t) => {
      const image = await ensureImage(label, { log: quiet });
      const backend = createQemuBackend({ runRoot: runDir, accelerator: "tcg", log: quiet });
      const vm = await backend.boot({ vmName: `${label}-penalties`, image, log: quiet });
      try {
        for (let i = 0; i < 20; i++) await bannerThenHangUp(vm.ssh.host, vm.ssh.port);
        // The listener counts a penalty when the connection's process ends: let the last ones end.
        await sleep(2_000);
        const session = await connectSsh(vm.ssh, { readyTimeoutMs: 60_000 });
        try {
          const lines: string[] = [];
          const result = await session.exec("sshd -V 2>&1 | head -1; echo in", { onStdout: (l) => lines.push(l) });
          assert.equal(result.exitCode, 0);
          assert.equal(lines.at(-1), "in");
          t.diagnostic(`the guest's sshd: ${lines[0]}`);
        } finally {
          session.close();
        }
      } finally {
        await vm.destroy();
      }
    });

    const ownNode = guest.ownNode;
    if (ownNode !== undefined) {
      describe("a JavaScript action", () => {
        let git: GitHttpServer;
        before(async () => {
          git = await startGitHttpServer();
          await git.publish("solstice-test/where", WHERE_JS, ["v1"]);
        });
        after(async () => {
          await git?.close();
        });

        test(`runs on the image's own Node ${ownNode} (images.yaml \`node:\`)`, async () => {
          const workflow = `on: push\njobs:\n  js:\n    runs-on: ${label}\n    steps:\n      - uses: solstice-test/where@v1\n`;
          await writeFile(path.join(repo, "js.yml"), workflow);
          await commitAll(repo, "a JavaScript action");
          const run = await runCiadm(["run", "js.yml", "--run-dir", runDir], repo, { SOLSTICE_ACTIONS_URL: git.url });
          assert.equal(run.code, 0, run.stdout + run.stderr);
          assert.match(
            run.stdout,
            new RegExp(
              `action on node v${ownNode}\\.\\d+\\.\\d+ for ${guest.runnerArch.toLowerCase()} at /usr/bin/node`,
            ),
          );
          assert.deepEqual(await leftovers(runDir), { dirs: [], qemu: [] });
        });
      });
    }
  });
}
