import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startFakeForgejo } from "./fakes/forgejo/fake-forgejo.ts";
import { type FakeGitHub, startFakeGitHub } from "./fakes/github/fake-github.ts";

// The shell blocks of docs/github.md and docs/forgejo.md, run as an operator pastes them (through
// corepack pnpm --silent), against the fake forges: only what a reader would change is changed
// (the forge's address, the runner's directory, a token's placeholder).

const ROOT = path.resolve(import.meta.dirname, "..");
const AMQP_URL = process.env.SOLSTICE_TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

/** The first ```sh block of `doc` (docs/github.md by default) that contains `marker`. */
async function docBlock(marker: string, doc = "docs/github.md"): Promise<string> {
  const text = await readFile(path.join(ROOT, doc), "utf8");
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  const block = blocks.find((b) => b.includes(marker));
  assert.ok(block, `${doc} has a shell block with ${marker}`);
  return block.replace(/^ {3}/gm, ""); // blocks inside a numbered list are indented
}

interface Run {
  code: number | null;
  output: string;
}

/** Runs a shell block with bash in the repository root, `stdin` typed at its prompts. */
function runBlock(
  script: string,
  opts: { stdin?: string; env?: Record<string, string>; until?: RegExp; timeoutMs?: number },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-euo", "pipefail", "-c", script], {
      cwd: ROOT,
      env: { ...process.env, COREPACK_ENABLE_DOWNLOAD_PROMPT: "0", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    const stopAll = () => {
      try {
        process.kill(-(child.pid ?? 0), "SIGTERM");
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      stopAll();
      reject(new Error(`the block did not finish within ${opts.timeoutMs ?? 60_000} ms:\n${output}`));
    }, opts.timeoutMs ?? 60_000);
    const take = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (opts.until?.test(output)) stopAll();
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    child.stdin.end(opts.stdin ?? "");
  });
}

describe("docs/github.md's commands, as written, against a fake GitHub", { timeout: 240_000 }, () => {
  let gh: FakeGitHub;
  let dir: string;
  let keysFile: string;
  const namespace = `docs-${randomUUID().slice(0, 8)}`;
  const runnerDir = () => path.join(dir, "omnios-1");
  /** The reader's edits: their repository's URL and their runner's directory. */
  const localise = (block: string) =>
    block
      .replaceAll("https://github.com/ACME/APP", `${gh.url}/acme/app`)
      .replaceAll("https://api.github.com/repos/ACME/APP", `${gh.url}/api/v3/repos/acme/app`)
      .replaceAll("/var/lib/solstice/github/omnios-1", runnerDir());

  before(async () => {
    gh = await startFakeGitHub({ pollHoldMs: 500 });
    dir = await mkdtemp(path.join(tmpdir(), "solstice-docs-"));
    keysFile = path.join(dir, "fleet.keys");
    const keys = await runBlock(`corepack pnpm --silent ciadm keys generate --out ${keysFile}`, {});
    assert.equal(keys.code, 0, keys.output);
  });
  after(async () => {
    await gh?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("register: the token typed at read -rs, never echoed; the runner's files written 0600", async () => {
    const token = gh.addRegistrationToken(`${gh.url}/acme/app`);
    const run = await runBlock(localise(await docBlock("github-runner register \\\n")), { stdin: `${token}\n` });
    assert.equal(run.code, 0, run.output);
    assert.ok(!run.output.includes(token), "the registration token was printed");
    for (const file of [".runner", ".credentials", ".credentials_rsaparams"]) {
      assert.equal((await stat(path.join(runnerDir(), file))).mode & 0o777, 0o600, file);
    }
    assert.ok(gh.runnerByName("solstice-omnios-1"), "GitHub knows the runner");
  });

  test("the daemon command starts and says it listens for jobs", async () => {
    const block = localise(await docBlock("github-runner daemon --dir"))
      .replace(/SOLSTICE_AMQP_URL=\S+/, `SOLSTICE_AMQP_URL=${AMQP_URL}`)
      .replace(/SOLSTICE_FLEET_KEYS_FILE=\S+/, `SOLSTICE_FLEET_KEYS_FILE=${keysFile}`);
    const run = await runBlock(block, {
      env: { SOLSTICE_NAMESPACE: namespace },
      until: /connected to GitHub; listening for jobs/,
    });
    assert.match(run.output, /connected to GitHub; listening for jobs/);
  });

  test("remove: the token read from SOLSTICE_GITHUB_REMOVAL_TOKEN; GitHub forgets the runner and the files go", async () => {
    const token = gh.addRemoveToken(`${gh.url}/acme/app`);
    const run = await runBlock(localise(await docBlock("github-runner remove")), {
      env: { SOLSTICE_GITHUB_REMOVAL_TOKEN: token },
    });
    assert.equal(run.code, 0, run.output);
    assert.ok(!run.output.includes(token));
    assert.equal(gh.runnerByName("solstice-omnios-1"), undefined);
    await assert.rejects(stat(path.join(runnerDir(), ".credentials")));
  });

  test("JIT: the documented request gives a config whose labels match runs-on: [self-hosted, omnios], and the daemon starts on it without a warning", async () => {
    gh.addPat("ghp_docs");
    const request = await runBlock(localise(await docBlock("generate-jitconfig")), { env: { TOKEN: "ghp_docs" } });
    assert.equal(request.code, 0, request.output);
    const answer = JSON.parse(request.output) as { encoded_jit_config: string; runner: { id: number } };
    assert.ok(answer.encoded_jit_config);
    const run = await runBlock(await docBlock("--jitconfig"), {
      env: {
        ENCODED_JIT_CONFIG: answer.encoded_jit_config,
        SOLSTICE_AMQP_URL: AMQP_URL,
        SOLSTICE_FLEET_KEYS_FILE: keysFile,
        SOLSTICE_NAMESPACE: namespace,
      },
      until: /connected to GitHub; listening for jobs/,
    });
    assert.match(run.output, /connected to GitHub; listening for jobs/);
    assert.doesNotMatch(run.output, /lack self-hosted/);
  });
});

describe("docs/forgejo.md's register commands, as written, against a fake Forgejo", { timeout: 120_000 }, () => {
  test("register with a registration token, then offline registration with a shared secret: .runner 0600 with the forge's runner", async () => {
    const forge = await startFakeForgejo();
    const dir = await mkdtemp(path.join(tmpdir(), "solstice-docs-forgejo-"));
    try {
      const runnerFile = path.join(dir, ".runner");
      const localise = (block: string) =>
        block
          .replaceAll("https://forgejo.example.com", forge.url)
          .replaceAll("/var/lib/solstice/runner/.runner", runnerFile);
      forge.addRegistrationToken("reg-docs-token");
      const register = await runBlock(
        localise(await docBlock("forgejo-runner register", "docs/forgejo.md")).replace(
          "<registration token>",
          "reg-docs-token",
        ),
        {},
      );
      assert.equal(register.code, 0, register.output);
      assert.equal((await stat(runnerFile)).mode & 0o777, 0o600);
      const written = JSON.parse(await readFile(runnerFile, "utf8")) as { uuid: string; name: string };
      const record = forge.runners.get(written.uuid);
      assert.equal(record?.name, "solstice-1");
      assert.deepEqual(record?.labels, ["solstice-linux", "solstice-ubuntu"]);
      await rm(runnerFile);

      // The offline block's server half is forgejo-cli on the server: the fake plays it.
      const secret = randomUUID().replaceAll("-", "").padEnd(40, "0");
      const uuid = forge.registerOffline({ secret, name: "solstice-1", labels: ["solstice-linux", "solstice-ubuntu"] });
      const runnerHalf = (await docBlock("create-runner-file", "docs/forgejo.md")).split(
        "# on the runner machine\n",
      )[1];
      assert.ok(runnerHalf, "the offline block has a runner-machine half");
      const offline = await runBlock(localise(runnerHalf), { env: { SECRET: secret } });
      assert.equal(offline.code, 0, offline.output);
      assert.match(offline.output, /the forge accepted it/);
      const file = JSON.parse(await readFile(runnerFile, "utf8")) as { uuid: string };
      assert.equal(file.uuid, uuid);
    } finally {
      await forge.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
