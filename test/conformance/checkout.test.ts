import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { FleetKeyring, generateFleetKey, JobSource, Outcome, parseFleetKeys } from "@solstice/protocol";
import { START_MODE_TITLE, TEST_LABEL } from "../support/start-mode.ts";
import { type ConformanceRun, runConformanceWorkflow } from "./workflow-run.ts";

// The built-in checkout in one tiny VM (TCG), against a forge inside the guest itself (guests
// cannot reach the host): bare repositories served over git's HTTP protocol by busybox httpd
// behind basic auth. It checks out with the job's token and with a secret token, into a path,
// with full history and submodules, then again with and without `clean`. A `git` wrapper put on
// PATH records every git command line; the token must be in none, nor in git's config or the log.
const WORKFLOW = `
on: push
jobs:
  checkout:
    runs-on: tiny
    steps:
      # 0: the forge: acme/app (two commits, submodule lib -> ../lib.git) and acme/lib
      - name: Serve repositories
        env:
          JOB_TOKEN: \${{ secrets.JOB_TOKEN_FOR_SERVER }}
          PAT: \${{ secrets.PAT }}
          GIT_TERMINAL_PROMPT: "0"
        run: |
          git config --global user.email ci@example.org
          git config --global user.name ci
          git config --global init.defaultBranch main
          git config --global protocol.file.allow always
          mkdir -p /srv/git/acme && cd /srv/git/acme
          git init -q lib-src && (cd lib-src && echo lib > lib.txt && git add . && git commit -qm lib)
          git clone -q --bare lib-src lib.git
          git init -q app-src && cd app-src
          echo first > README.md && git add . && git commit -qm one
          git submodule add -q ../lib.git lib
          echo second > README.md && git add . && git commit -qm two
          cd .. && git clone -q --bare app-src app.git
          for r in app.git lib.git; do git -C "$r" update-server-info; done
          printf '/:x-access-token:%s\\n/:x-access-token:%s\\n' "$JOB_TOKEN" "$PAT" > /srv/httpd.conf
          busybox httpd -p 127.0.0.1:8080 -h /srv/git -c /srv/httpd.conf
          git ls-remote http://127.0.0.1:8080/acme/app.git >/dev/null 2>&1 && echo UNPROTECTED || echo "refused without credentials"
          mkdir -p /root/spy
          printf '#!/bin/sh\\nprintf "%%s\\\\n" "$*" >> /tmp/git-argv.log\\nexec /usr/bin/git "$@"\\n' > /root/spy/git
          chmod +x /root/spy/git
          echo /root/spy >> "$GITHUB_PATH"
      # 1: the job's token, a path, full history, submodules
      - uses: actions/checkout@v4
        with:
          ref: main
          path: app
          fetch-depth: 0
          submodules: true
      # 2: what it checked out; credentials persist for later git commands; then dirty the checkout
      - working-directory: app
        env:
          GIT_TERMINAL_PROMPT: "0"
        run: |
          echo "readme=$(cat README.md) lib=$(cat lib/lib.txt) commits=$(git rev-list --count HEAD)"
          echo "origin=$(git remote get-url origin)"
          echo "token-file-mode=$(stat -c %a /tmp/solstice-checkout-*-1.token)"
          git fetch -q origin main && echo "later fetch works"
          git -C lib fetch -q origin && echo "submodule fetch works"
          echo untracked > untracked.txt
          echo changed > README.md
      # 3, 4: clean (the default) removes untracked files and local changes
      - uses: actions/checkout@v4
        with: { ref: main, path: app, fetch-depth: 0 }
      - working-directory: app
        run: |
          echo "after clean: untracked=$(test -e untracked.txt && echo yes || echo no) readme=$(cat README.md)"
          echo untracked > untracked.txt
      # 5, 6: clean: false keeps them
      - uses: actions/checkout@v4
        with: { ref: main, path: app, fetch-depth: 0, clean: false }
      - working-directory: app
        run: |
          echo "after no clean: untracked=$(test -e untracked.txt && echo yes || echo no)"
      # 7: another repository, its default branch, with a secret as token
      - uses: actions/checkout@v4
        with:
          repository: acme/lib
          token: \${{ secrets.PAT }}
          path: other
          fetch-depth: 0
      # 8: what git was run with and what its config holds
      - run: |
          echo "other=$(cat other/lib.txt)"
          sed 's/^/argv: /' /tmp/git-argv.log
          cat app/.git/config app/.git/modules/lib/config other/.git/config | sed 's/^/config: /'
`;

describe(`conformance: checkout in the guest with tokens, path, history, submodules, clean (one ${TEST_LABEL} VM, TCG, ${START_MODE_TITLE})`, {
  timeout: 300_000,
}, () => {
  const jobToken = `job-${randomBytes(12).toString("hex")}`;
  const pat = `pat-${randomBytes(12).toString("hex")}`;
  let run: ConformanceRun;

  test("every checkout succeeds", async () => {
    run = await runConformanceWorkflow({
      workflow: WORKFLOW,
      file: ".github/workflows/checkout.yml",
      source: JobSource.GITHUB,
      github: { ref: "refs/heads/main", repository: "acme/app", event_name: "push" },
      repository: {
        url: "http://127.0.0.1:8080/acme/app.git",
        fullName: "acme/app",
        commitSha: "",
        ref: "refs/heads/main",
      },
      secrets: {
        values: { PAT: pat, JOB_TOKEN_FOR_SERVER: jobToken },
        keyring: new FleetKeyring(parseFleetKeys(generateFleetKey("conformance"))),
      },
      checkoutToken: jobToken,
    });
    assert.deepEqual(
      run.outcomes,
      Array.from({ length: 9 }, (_, i) => [i, "SUCCESS", "SUCCESS"]),
      run.text,
    );
    assert.equal(run.result.result, Outcome.SUCCESS);
    assert.ok(run.stepLog(0).includes("refused without credentials"), "the server wants a token");
  });

  test("the checkout has the ref's commit, full history, the submodule, and no credentials in the URL", () => {
    const log = run.stepLog(2);
    assert.ok(log.includes("readme=second lib=lib commits=2"), log.join("\n"));
    assert.ok(log.includes("origin=http://127.0.0.1:8080/acme/app.git"), log.join("\n"));
    assert.ok(log.includes("token-file-mode=600"), log.join("\n"));
    assert.ok(log.includes("later fetch works") && log.includes("submodule fetch works"), log.join("\n"));
  });

  test("clean removes untracked files and local changes; clean: false keeps them", () => {
    assert.deepEqual(run.stepLog(4), ["after clean: untracked=no readme=second"]);
    assert.deepEqual(run.stepLog(6), ["after no clean: untracked=yes"]);
  });

  test("another repository checks out at its default branch with a secret token", () => {
    assert.equal(run.stepLog(8)[0], "other=lib");
  });

  test("the tokens are in no git command line, no git config and no log line", () => {
    const log = run.stepLog(8);
    const argv = log.filter((l) => l.startsWith("argv: "));
    const config = log.filter((l) => l.startsWith("config: "));
    assert.ok(
      argv.some((l) => l.includes("fetch -q origin main")),
      "the wrapper saw the checkout's git commands",
    );
    assert.ok(
      config.some((l) => /helper = "?!f\(\)/.test(l)),
      `the credential helper is configured:\n${config.join("\n")}`,
    );
    for (const line of [...argv, ...config]) assert.doesNotMatch(line, /\*\*\*/, `masked token in ${line}`);
    assert.ok(!run.text.includes(jobToken) && !run.text.includes(pat), "no token in the log");
    assert.ok(!run.text.includes("***"), "no token was even printed (masked)");
  });
});
