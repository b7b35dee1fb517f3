import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { connectSsh, generateJobKeys, HostKeyMismatchError, SshError, type SshSession } from "@solstice/ssh";
import { bootTestGuest, type TestGuest } from "./tiny-guest.ts";

describe("an SSH session to a real guest", { timeout: 180_000 }, () => {
  let guest: TestGuest;
  let session: SshSession;

  before(async () => {
    guest = await bootTestGuest();
    session = await connectSsh(guest.target, { readyTimeoutMs: 30_000 });
  });

  after(() => {
    session?.close();
    guest?.stop();
  });

  test("a connection with the pinned host key runs a command", { timeout: 30_000 }, async () => {
    const out: string[] = [];
    const result = await session.exec("echo pinned-ok", { onStdout: (l) => out.push(l) });
    assert.deepEqual(out, ["pinned-ok"]);
    assert.equal(result.exitCode, 0);
  });

  test("a guest presenting any other host key is refused", { timeout: 30_000 }, async () => {
    const wrong = { ...guest.target, hostKey: generateJobKeys().host.publicKey };
    await assert.rejects(connectSsh(wrong, { readyTimeoutMs: 20_000 }), (err) => {
      assert.ok(err instanceof HostKeyMismatchError);
      assert.equal(err.code, "host_key_mismatch");
      assert.match(err.message, /SHA256:/);
      return true;
    });
  });

  test("a script's stdout and stderr arrive as lines, in order, with its exit code", { timeout: 30_000 }, async () => {
    const lines: string[] = [];
    const result = await session.runScript({
      script: "echo one\necho two >&2\nsleep 0.2\necho three\nprintf 'no newline'\nexit 7\n",
      shell: "bash -e {0}",
      env: {},
      onLine: (stream, text) => lines.push(`${stream}:${text}`),
    });
    assert.deepEqual(lines, ["stdout:one", "stderr:two", "stdout:three", "stdout:no newline"]);
    assert.deepEqual(result, { exitCode: 7, aborted: false });
  });

  test("a script sees its environment and runs in its working directory, created if missing", {
    timeout: 30_000,
  }, async () => {
    const dir = `/tmp/${randomUUID()}/work dir`;
    const lines: string[] = [];
    const result = await session.runScript({
      script: 'echo "$GREETING"\npwd\n',
      shell: "bash -e {0}",
      env: { GREETING: 'it\'s a "quoted" $value' },
      workingDirectory: dir,
      onLine: (_stream, text) => lines.push(text),
    });
    assert.equal(result.exitCode, 0);
    assert.deepEqual(lines, ['it\'s a "quoted" $value', dir]);
  });

  test("a script's environment is on no command line and in no file in the guest while it runs", {
    timeout: 30_000,
  }, async () => {
    const secret = `canary-${randomUUID()}`;
    const lines: string[] = [];
    const result = await session.runScript({
      // Every process's argv, while the step runs; then what is left of the step's files.
      script:
        '[ "$TOKEN" = "$EXPECTED" ] && echo token-set\nfor f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f" 2>/dev/null; echo; done\ngrep -rlF -- "$TOKEN" /tmp | wc -l\n',
      shell: "bash -e {0}",
      env: { TOKEN: secret, EXPECTED: secret },
      onLine: (_stream, text) => lines.push(text),
    });
    assert.equal(result.exitCode, 0);
    assert.equal(lines[0], "token-set");
    assert.ok(lines.length > 5, "the guest's processes were listed");
    assert.ok(!lines.some((l) => l.includes(secret)), "the secret is on no command line");
    assert.equal(lines.at(-1)?.trim(), "0", "no file under /tmp holds the secret once the script runs");
  });

  test("a script and its files arrive byte for byte with their modes, on the run's own round trip", {
    timeout: 30_000,
  }, async () => {
    const dir = `/tmp/${randomUUID()}`;
    // Text the shell must not expand or change: quotes, $, backticks, backslashes, a line that
    // looks like a here-document's end, and no final newline.
    const tricky = "a 'quoted' \"line\" $HOME `id` \\n\nEOF\n\n  indented\t\nlast";
    const lines: string[] = [];
    const result = await session.runScript({
      // Run as a program ({0}), with shell builtins only: the step's PATH leads nowhere, which
      // must not stop the files arriving.
      script: `#!/bin/sh\n[ -x "$0" ] && echo executable\nwhile IFS= read -r l || [ -n "$l" ]; do echo "$l"; done < ${dir}/token\n`,
      shell: "{0}",
      env: { PATH: "/nonexistent" },
      files: [
        { path: `${dir}/token`, content: tricky, mode: 0o600 },
        { path: `${dir}/sub/event.json`, content: "{}", mode: 0o644 },
      ],
      onLine: (_stream, text) => lines.push(text),
    });
    assert.deepEqual(result, { exitCode: 0, aborted: false });
    assert.deepEqual(lines, ["executable", ...tricky.split("\n")]);
    const out: string[] = [];
    await session.exec(`stat -c %a ${dir}/token ${dir}/sub/event.json; sha256sum < ${dir}/token`, {
      onStdout: (l) => out.push(l),
    });
    const digest = createHash("sha256").update(tricky).digest("hex");
    assert.deepEqual(out, ["600", "644", `${digest}  -`], "modes as asked, and the exact bytes");
  });

  test("a prelude that prints a word refuses the script, which never runs", { timeout: 30_000 }, async () => {
    const marker = `/tmp/${randomUUID()}`;
    const lines: string[] = [];
    const refused = await session.runScript({
      script: `touch ${marker}\necho ran\n`,
      shell: "sh -e {0}",
      env: {},
      prelude:
        '[ -d /no/such/dir ] || refused="$refused directory"\ncommand -v no-such-program >/dev/null || refused="$refused program"',
      onLine: (_stream, text) => lines.push(text),
    });
    assert.deepEqual(refused, { exitCode: 0, aborted: false, refused: ["directory", "program"] });
    assert.equal(lines.length, 0, "the refusal is not step output");
    const seen: string[] = [];
    await session.exec(`[ -e ${marker} ] && echo exists || echo absent`, { onStdout: (l) => seen.push(l) });
    assert.deepEqual(seen, ["absent"], "the refused script did not run");
    const ran = await session.runScript({
      script: `touch ${marker}\necho ran\n`,
      shell: "sh -e {0}",
      env: {},
      prelude: '[ -d /tmp ] || refused="$refused directory"',
      onLine: (_stream, text) => lines.push(text),
    });
    assert.deepEqual(ran, { exitCode: 0, aborted: false });
    assert.deepEqual(lines, ["ran"]);
  });

  test("aborting a script kills it and its children in the guest", { timeout: 60_000 }, async () => {
    const marker = `/tmp/${randomUUID()}`;
    const controller = new AbortController();
    const running = session.runScript({
      script: `sleep 300 &\necho $! > ${marker}.child\necho $$ > ${marker}.main\necho started\nwait\n`,
      shell: "bash -e {0}",
      env: {},
      signal: controller.signal,
      onLine: (_stream, text) => {
        if (text === "started") controller.abort();
      },
    });
    const result = await running;
    assert.deepEqual(result, { exitCode: null, aborted: true });
    const out: string[] = [];
    await session.exec(
      `for f in ${marker}.child ${marker}.main; do if kill -0 "$(cat $f)" 2>/dev/null; then echo alive; else echo gone; fi; done`,
      { onStdout: (l) => out.push(l) },
    );
    assert.deepEqual(out, ["gone", "gone"]);
  });

  test("an abort at any moment of a script's start stops it: it never runs on unseen", {
    timeout: 120_000,
  }, async () => {
    // The abort lands before the channel opens, while the exec request is on its way, before the
    // step has written its pid, and after: in none of them may the script go on to its end.
    const marker = `/tmp/${randomUUID()}`;
    const delaysMs = [0, 1, 3, 6, 10, 15, 25, 40, 60, 90, 130, 200, 300];
    const results = [];
    for (const delay of delaysMs) {
      const controller = new AbortController();
      const lines: string[] = [];
      const started = Date.now();
      const running = session.runScript({
        script: `sleep 8\necho reached\ntouch ${marker}.${delay}\n`,
        shell: "sh -e {0}",
        env: {},
        signal: controller.signal,
        onLine: (_stream, text) => lines.push(text),
      });
      setTimeout(() => controller.abort(), delay);
      const result = await running;
      results.push({ delay, result, lines, tookMs: Date.now() - started });
    }
    await new Promise((r) => setTimeout(r, 9_000));
    const left: string[] = [];
    await session.exec(`ls ${marker}.* 2>/dev/null; ls /tmp | grep -c '^solstice-step-.*\\.pid$' || true`, {
      onStdout: (l) => left.push(l),
    });
    for (const { delay, result, lines, tookMs } of results) {
      assert.equal(result.aborted, true, `abort after ${delay} ms`);
      assert.deepEqual(lines, [], `abort after ${delay} ms`);
      assert.ok(tookMs < 8_000, `abort after ${delay} ms took ${tookMs} ms, as long as the script`);
    }
    assert.deepEqual(left, ["0"], "no script reached its end and no pid file is left");
  });

  test("exec rejects with an aborted error when its signal fires", { timeout: 30_000 }, async () => {
    await assert.rejects(session.exec("sleep 30", { signal: AbortSignal.timeout(300) }), (err) => {
      assert.ok(err instanceof SshError);
      assert.equal(err.code, "aborted");
      return true;
    });
  });
});
