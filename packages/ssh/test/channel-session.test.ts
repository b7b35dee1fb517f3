import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Duplex } from "node:stream";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ChannelSession, SshError } from "../src/index.ts";

// The guest's job-commands (packages/images/recipes/job-commands.c), built and run on this host
// with its standard input and output as the channel, and the host's ChannelSession talking to it:
// the same two programs as in a fast guest, without the VM between them (the conformance suites
// run them in real guests). Commands run as this host's user, root, as in the guest.
const SOURCE = fileURLToPath(new URL("../../images/recipes/job-commands.c", import.meta.url));
const GREETING = "SOLSTICE-COMMANDS 1\n";

let dir: string;
let binary: string;
const servers: ChildProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "solstice-job-commands-"));
  binary = join(dir, "job-commands");
  await promisify(execFile)("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", binary, SOURCE]);
});

after(async () => {
  for (const server of servers) server.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

/** A session on a new job-commands, its greeting read as the key agent's exchange reads it. */
async function startSession(args: string[] = [], env: NodeJS.ProcessEnv = { KEPT: "yes", PATH: "/bin" }) {
  const server = spawn(binary, args, { stdio: ["pipe", "pipe", "inherit"], env });
  servers.push(server);
  const stdout = server.stdout;
  const stdin = server.stdin;
  if (!stdout || !stdin) throw new Error("no pipes");
  const greeting = await new Promise<Buffer>((resolve) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= GREETING.length) {
        stdout.off("data", onData);
        stdout.pause();
        resolve(got);
      }
    };
    stdout.on("data", onData);
  });
  assert.equal(greeting.subarray(0, GREETING.length).toString(), GREETING);
  const rest = greeting.subarray(GREETING.length);
  if (rest.length > 0) stdout.unshift(rest);
  const exited = new Promise<number | null>((resolve) => server.on("exit", (code) => resolve(code)));
  return { session: new ChannelSession(Duplex.from({ readable: stdout, writable: stdin }), "root"), server, exited };
}

async function run(session: ChannelSession, command: string, stdin?: Buffer | string) {
  const out: string[] = [];
  const err: string[] = [];
  const result = await session.exec(command, {
    ...(stdin !== undefined ? { stdin } : {}),
    onStdout: (line) => out.push(line),
    onStderr: (line) => err.push(line),
  });
  return { ...result, out, err };
}

test("a command's output, errors and exit status; a signal's name; the login environment dropbear gives", async () => {
  const { session } = await startSession();
  try {
    const done = await run(session, "echo out; echo err >&2; exit 3");
    assert.deepEqual([done.exitCode, done.out, done.err], [3, ["out"], ["err"]]);
    const killed = await run(session, "kill -TERM $$");
    assert.deepEqual([killed.exitCode, killed.signal], [null, "SIGTERM"]);
    const env = await run(session, 'echo "$USER $LOGNAME $HOME $SHELL $(pwd) [$KEPT]"; echo "$PATH"');
    const home = (await promisify(execFile)("sh", ["-c", "getent passwd root | cut -d: -f6"])).stdout.trim();
    const shell = (await promisify(execFile)("sh", ["-c", "getent passwd root | cut -d: -f7"])).stdout.trim();
    assert.deepEqual(env.out, [
      `root root ${home} ${shell} ${home} []`,
      "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
  } finally {
    session.close();
  }
});

test("--keep-env passes the server's own environment on, under the login variables", async () => {
  const { session } = await startSession(["--keep-env"]);
  try {
    const env = await run(session, 'echo "$KEPT $PATH"');
    assert.deepEqual(env.out, ["yes /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
  } finally {
    session.close();
  }
});

test("8 MiB in while 8 MiB comes out of the same command, beside a second command: no deadlock, every byte", {
  timeout: 60_000,
}, async () => {
  const { session } = await startSession();
  try {
    const input = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < input.length; i++) input[i] = (i * 7 + (i >> 12)) & 0xff;
    const digest = createHash("sha256").update(input).digest("hex");
    // 8 MiB go out (8,192 lines of 1,024) before `sha256sum` reads any of the input: both ways at once.
    const both = run(session, "head -c 8388608 /dev/zero | tr '\\0' a | fold -w 1024; echo; sha256sum", input);
    // A command that reads none of its input holds up only its own.
    const stalled = run(session, "sleep 2; exec 0<&-; echo late", Buffer.alloc(1024 * 1024, 1));
    const quick = await run(session, "echo quick");
    assert.deepEqual(quick.out, ["quick"]);
    const done = await both;
    assert.equal(done.exitCode, 0);
    assert.equal(done.out.length, 8193);
    assert.ok(
      done.out.slice(0, 8192).every((line) => line === "a".repeat(1024)),
      "every output line whole",
    );
    assert.equal(done.out[8192], `${digest}  -`, "every input byte, in order");
    assert.deepEqual((await stalled).out, ["late"]);
  } finally {
    session.close();
  }
});

test("a background process holding the output does not keep the command from ending", async () => {
  const { session } = await startSession();
  try {
    const started = Date.now();
    const done = await run(session, "echo before; (sleep 5; echo never) & echo after");
    assert.deepEqual(done.out, ["before", "after"]);
    assert.ok(Date.now() - started < 4_000, `ended after ${Date.now() - started} ms`);
  } finally {
    session.close();
  }
});

test("upload writes the file with its mode; runScript and its abort work on the channel as on SSH", {
  timeout: 30_000,
}, async () => {
  const { session } = await startSession();
  try {
    const path = join(dir, "uploaded");
    await session.upload(path, "content\n", 0o640);
    assert.equal(await readFile(path, "utf8"), "content\n");
    assert.equal((await stat(path)).mode & 0o777, 0o640);

    const lines: string[] = [];
    const ran = await session.runScript({
      script: 'echo "step $GREETING"',
      shell: "sh -e {0}",
      env: { GREETING: "hello" },
      onLine: (_stream, text) => lines.push(text),
    });
    assert.deepEqual([ran.exitCode, lines], [0, ["step hello"]]);

    const controller = new AbortController();
    const marker = join(dir, "aborted-step-ran-on");
    const aborted = session.runScript({
      script: `echo started; sleep 30; touch ${marker}`,
      shell: "sh -e {0}",
      env: {},
      signal: controller.signal,
      onLine: (_stream, text) => {
        if (text === "started") controller.abort();
      },
    });
    assert.deepEqual(await aborted, { exitCode: null, aborted: true });
    await assert.rejects(stat(marker), "the step's process group was killed");
  } finally {
    session.close();
  }
});

test("the channel closing ends running commands without a status; a new command is refused", async () => {
  const { session, server, exited } = await startSession();
  const running = run(session, "sleep 30");
  await new Promise((resolve) => setTimeout(resolve, 200));
  server.kill("SIGKILL");
  await exited;
  assert.equal((await running).exitCode, null);
  assert.equal(session.open, false);
  await assert.rejects(
    session.exec("true"),
    (error: unknown) => error instanceof SshError && error.code === "connect_failed",
  );
});

test("a command line longer than a frame is refused on the host, and the session goes on", async () => {
  const { session } = await startSession();
  try {
    await assert.rejects(
      session.exec(`echo ${"x".repeat(70_000)}`),
      (error: unknown) => error instanceof SshError && error.code === "command_too_long",
    );
    assert.deepEqual((await run(session, "echo still")).out, ["still"]);
  } finally {
    session.close();
  }
});

test("a frame longer than the protocol allows ends the server with status 5", async () => {
  const { server, exited } = await startSession();
  const head = Buffer.alloc(9);
  head.write("O", 0, "latin1");
  head.writeUInt32BE(1, 1);
  head.writeUInt32BE(65_537, 5);
  server.stdin?.write(head);
  assert.equal(await exited, 5);
});
