import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { JobSource, Outcome } from "@solstice/protocol";
import { START_MODE_TITLE, TEST_LABEL } from "../support/start-mode.ts";
import { type ConformanceRun, runConformanceWorkflow, variablesIn } from "./workflow-run.ts";

// One Forgejo job in one tiny VM (TCG), many cases: hashFiles() in the guest, the standard
// variables (GitHub's and Forgejo's), working-directory, custom shells, a shell the guest lacks,
// multi-line GITHUB_ENV/GITHUB_OUTPUT, GITHUB_PATH order, add-mask, stop-commands and annotations.
// Each step's comment names the behaviour it shows; failing cases have continue-on-error, so the
// job succeeds.
const WORKFLOW = `
on: push
env:
  GITHUB_SHA: not-the-sha
  CI: yes-overridden
jobs:
  semantics:
    runs-on: tiny
    steps:
      # 0: files with known bytes for hashFiles; walk order (a.lock, deep/er/b.lock, deep.lock)
      #    differs from sorted path order (deep.lock before deep/er/b.lock)
      - name: Lay out files
        run: |
          mkdir -p sub/dir vendor deep/er
          printf 'alpha\\n' > a.lock
          printf 'beta\\n' > deep/er/b.lock
          printf 'gamma\\n' > deep.lock
          printf 'vendored\\n' > vendor/c.lock
          printf 'text\\n' > notes.txt
      # 1: hashFiles() in if:, name, env and script, computed in the guest just before the step
      - id: hashed
        name: Hash \${{ hashFiles('**/*.lock', '!vendor/**') }}
        if: hashFiles('**/*.lock') != ''
        env:
          LOCK_HASH: \${{ hashFiles('**/*.lock', '!vendor/**') }}
        run: |
          echo "lock=$LOCK_HASH"
          echo "all=\${{ hashFiles('**/*.lock') }}"
          echo "none=[\${{ hashFiles('nothing/**') }}]"
          echo "workspace=\${{ github.workspace }} pwd=$(pwd)"
      # 2: the standard variables and the event payload
      - name: Standard variables
        run: |
          env | grep -E '^(CI|HOME|GITHUB_|RUNNER_|FORGEJO_|GITEA_)' | sort
          echo "EVENT=$(cat "$GITHUB_EVENT_PATH")"
          test -d "$RUNNER_TOOL_CACHE" && echo "TOOL_CACHE_EXISTS=yes"
      # 3, 4: working-directory, relative to the workspace and absolute
      - working-directory: sub/dir
        run: echo "pwd=$(pwd)"
      - working-directory: /tmp
        run: echo "pwd=$(pwd)"
      # 5: a working-directory that does not exist fails the step, as on GitHub
      - id: missing_dir
        working-directory: does/not/exist
        continue-on-error: true
        run: echo never runs
      # 6: shell: sh is sh -e: the first failing command ends the step
      - id: sh_e
        shell: sh
        continue-on-error: true
        run: |
          echo before-false
          false
          echo after-false
      # 7: a custom shell command (one every guest has: tiny's busybox sh, Debian's dash)
      - shell: sh -x {0}
        run: echo traced
      # 8: a shell whose program the guest lacks fails with a message saying so
      - id: missing
        shell: solstice-missing-shell {0}
        continue-on-error: true
        run: echo never
      # 9: multi-line values in GITHUB_ENV and GITHUB_OUTPUT; two GITHUB_PATH entries
      - id: multi
        run: |
          printf 'MULTI<<EOF_ENV\\nfirst line\\nsecond = line\\nEOF_ENV\\n' >> "$GITHUB_ENV"
          printf 'text<<OUT\\nx=1\\ny=2\\nOUT\\n' >> "$GITHUB_OUTPUT"
          mkdir -p "$HOME/bin1" "$HOME/bin2"
          printf '#!/bin/sh\\necho one\\n' > "$HOME/bin1/which-tool"
          printf '#!/bin/sh\\necho two\\n' > "$HOME/bin2/which-tool"
          chmod +x "$HOME/bin1/which-tool" "$HOME/bin2/which-tool"
          echo "$HOME/bin1" >> "$GITHUB_PATH"
          echo "$HOME/bin2" >> "$GITHUB_PATH"
      # 10: they reach the next step; the entry added last comes first on PATH
      - run: |
          printf '%s\\n' "$MULTI" | sed 's/^/env: /'
          echo 'output: \${{ toJSON(steps.multi.outputs.text) }}'
          echo "tool: $(which-tool)"
      # 11: workflow commands
      - run: |
          echo "::add-mask::hide-me-42"
          echo "visible hide-me-42"
          echo "::stop-commands::pause-here"
          echo "::error file=ignored.c,line=1::not a command while stopped"
          echo "::pause-here::"
          echo "::error file=src/main.c,line=12,col=3,endLine=14,title=Bad thing::it broke"
          echo "::notice::plain notice"
      # 12: an if: that cannot be evaluated fails its step, as on GitHub
      - id: bad_if
        if: hashFiles('../outside/*') != ''
        continue-on-error: true
        run: echo never evaluated
`;

const GITHUB = {
  ref: "refs/heads/main",
  ref_name: "main",
  sha: "abc123",
  repository: "acme/app",
  repository_owner: "acme",
  actor: "mona",
  event_name: "push",
  event: { head_commit: { message: "hello" } },
  run_id: "77",
  run_number: "5",
  run_attempt: "1",
  server_url: "https://code.example.org",
  workflow: "conformance.yml",
};

/** What the runner computes for files with these contents, in this order. */
function expectedHash(contents: string[]): string {
  const total = createHash("sha256");
  for (const c of contents) total.update(createHash("sha256").update(c).digest());
  return total.digest("hex");
}

describe(`conformance: semantics inside the guest (one ${TEST_LABEL} VM, TCG, ${START_MODE_TITLE})`, {
  timeout: 300_000,
}, () => {
  let run: ConformanceRun;

  test("the job runs every case and succeeds, each step with its expected outcome", async () => {
    run = await runConformanceWorkflow({
      workflow: WORKFLOW,
      file: ".forgejo/workflows/conformance.yml",
      source: JobSource.FORGEJO,
      github: GITHUB,
      repository: { url: "", fullName: "acme/app", commitSha: "abc123", ref: "refs/heads/main" },
    });
    assert.deepEqual(
      run.outcomes,
      [
        [0, "SUCCESS", "SUCCESS"],
        [1, "SUCCESS", "SUCCESS"],
        [2, "SUCCESS", "SUCCESS"],
        [3, "SUCCESS", "SUCCESS"],
        [4, "SUCCESS", "SUCCESS"],
        [5, "FAILURE", "SUCCESS"],
        [6, "FAILURE", "SUCCESS"],
        [7, "SUCCESS", "SUCCESS"],
        [8, "FAILURE", "SUCCESS"],
        [9, "SUCCESS", "SUCCESS"],
        [10, "SUCCESS", "SUCCESS"],
        [11, "SUCCESS", "SUCCESS"],
        [12, "FAILURE", "SUCCESS"],
      ],
      run.text,
    );
    assert.equal(run.result.result, Outcome.SUCCESS, run.result.reason);
  });

  test("hashFiles() is the runner's hash of the files the patterns select, computed in the guest", () => {
    const lock = expectedHash(["alpha\n", "beta\n", "gamma\n"]);
    const all = expectedHash(["alpha\n", "beta\n", "gamma\n", "vendored\n"]);
    const log = run.stepLog(1);
    assert.ok(log.includes(`lock=${lock}`), log.join("\n"));
    assert.ok(log.includes(`all=${all}`), log.join("\n"));
    assert.ok(log.includes("none=[]"), "no match is the empty string");
    assert.equal(run.result.steps[1]?.name, `Hash ${lock}`);
    assert.match(
      run.result.steps[12]?.reason ?? "",
      /^hashFiles\('\.\.\/outside\/\*'\): Invalid pattern '\.\.\/outside\/\*'\. Relative pathing '\.' and '\.\.' is not allowed/,
    );
    assert.ok(log.includes("workspace=/root/workspace/app pwd=/root/workspace/app"), log.join("\n"));
  });

  test("steps see GitHub's variables and Forgejo's; GITHUB_* cannot be overridden, CI can", () => {
    const vars = variablesIn(run.stepLog(2));
    const expected: Record<string, string> = {
      CI: "yes-overridden",
      HOME: "/root",
      GITHUB_ACTIONS: "true",
      GITHUB_ACTION: "2",
      GITHUB_ACTOR: "mona",
      GITHUB_API_URL: "https://code.example.org/api/v1",
      GITHUB_BASE_REF: "",
      GITHUB_EVENT_NAME: "push",
      GITHUB_EVENT_PATH: "/tmp/_github_workflow/event.json",
      GITHUB_HEAD_REF: "",
      GITHUB_JOB: "semantics",
      GITHUB_REF: "refs/heads/main",
      GITHUB_REF_NAME: "main",
      GITHUB_REF_TYPE: "branch",
      GITHUB_REPOSITORY: "acme/app",
      GITHUB_REPOSITORY_OWNER: "acme",
      GITHUB_RUN_ATTEMPT: "1",
      GITHUB_RUN_ID: "77",
      GITHUB_RUN_NUMBER: "5",
      GITHUB_SERVER_URL: "https://code.example.org",
      GITHUB_SHA: "abc123",
      GITHUB_WORKFLOW: "conformance.yml",
      GITHUB_WORKSPACE: "/root/workspace/app",
      RUNNER_OS: "Linux",
      RUNNER_ARCH:
        ({ "tiny-arm64": "ARM64", "tiny-riscv64": "RISCV64" } as Record<string, string>)[TEST_LABEL] ?? "X64",
      RUNNER_NAME: "solstice",
      RUNNER_ENVIRONMENT: "self-hosted",
      RUNNER_TEMP: "/tmp",
      RUNNER_TOOL_CACHE: "/root/workspace/_tool",
      FORGEJO_ACTIONS: "true",
      GITEA_ACTIONS: "true",
      TOOL_CACHE_EXISTS: "yes",
      EVENT: JSON.stringify(GITHUB.event),
    };
    for (const [name, value] of Object.entries(expected)) assert.equal(vars[name], value, name);
    for (const file of ["GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_STEP_SUMMARY"]) {
      assert.match(vars[file] ?? "", /^\/tmp\/_runner_file_commands_[0-9a-f-]+\/[a-z]+_2$/, file);
    }
    for (const [name, value] of Object.entries(vars)) {
      if (name.startsWith("GITHUB_") && name !== "GITHUB_ACTIONS") {
        assert.equal(vars[`FORGEJO_${name.slice("GITHUB_".length)}`], value, `FORGEJO_ twin of ${name}`);
      }
    }
    assert.equal(vars.RUNNER_DEBUG, undefined, "RUNNER_DEBUG only when debugging");
  });

  test("working-directory is relative to the workspace or absolute, and must exist", () => {
    assert.deepEqual(run.stepLog(3), ["pwd=/root/workspace/app/sub/dir"]);
    assert.deepEqual(run.stepLog(4), ["pwd=/tmp"]);
    assert.match(
      run.result.steps[5]?.reason ?? "",
      /working-directory `does\/not\/exist` \(\/root\/workspace\/app\/does\/not\/exist\) does not exist in the guest/,
    );
    assert.ok(!run.stepLog(5).includes("never runs"), "the step did not start");
  });

  test("shells: sh is sh -e, a custom command runs the script, a missing program is named", () => {
    assert.ok(run.stepLog(6).includes("before-false"));
    assert.ok(!run.stepLog(6).includes("after-false"), "sh -e stops at the failing command");
    assert.equal(run.result.steps[6]?.reason, "exit code 1");
    assert.ok(run.stepLog(7).includes("+ echo traced"), run.stepLog(7).join("\n"));
    assert.ok(run.stepLog(7).includes("traced"));
    assert.match(
      run.result.steps[8]?.reason ?? "",
      new RegExp(
        `^shell \`solstice-missing-shell \\{0\\}\` needs \`solstice-missing-shell\`, which is not installed in this guest \\(label ${TEST_LABEL}, PATH=.*\\); install it in an earlier step`,
      ),
    );
  });

  test("multi-line GITHUB_ENV and GITHUB_OUTPUT values and GITHUB_PATH reach the next step", () => {
    assert.deepEqual(run.result.steps[9]?.outputs, { text: "x=1\ny=2" });
    assert.deepEqual(run.stepLog(10), ["env: first line", "env: second = line", 'output: "x=1\\ny=2"', "tool: two"]);
  });

  test("add-mask hides a value, stop-commands pauses commands, error annotations keep file and lines", () => {
    const log = run.stepLog(11);
    assert.ok(log.includes("visible ***"), log.join("\n"));
    assert.doesNotMatch(run.text, /hide-me-42/);
    assert.ok(log.includes("::error file=ignored.c,line=1::not a command while stopped"));
    assert.deepEqual(run.result.steps[11]?.annotations, [
      { level: "error", message: "it broke", file: "src/main.c", line: 12, column: 3, endLine: 14, title: "Bad thing" },
      { level: "notice", message: "plain notice" },
    ]);
  });
});
