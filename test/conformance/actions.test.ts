import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type ActionProvider, GracefulCancel, hostActionProvider } from "@solstice/executor";
import { JobSource, Outcome } from "@solstice/protocol";
import { pino } from "pino";
import { type GitHttpServer, startGitHttpServer } from "../support/git-http-server.ts";
import { START_MODE_TITLE, TEST_LABEL } from "../support/start-mode.ts";
import { runConformanceWorkflow } from "./workflow-run.ts";

// Actions written for these tests, served by a git server on loopback (the host fetches them;
// the guest never reaches it). JavaScript ones use Node built-ins only.
const HELLO_JS = {
  "action.yml": `name: hello
inputs:
  who-to-greet:
    description: who
    required: true
    default: World
  greeting:
    default: Hello
  nothing:
    required: true
outputs:
  greeting:
    description: the sentence
runs:
  using: node20
  main: dist/index.js
`,
  "dist/index.js": `const fs = require("node:fs");
const who = process.env["INPUT_WHO-TO-GREET"];
const sentence = process.env.INPUT_GREETING + ", " + who + "!";
console.log("said: " + sentence);
console.log("node " + process.version + " main=" + (require.main === module));
console.log("action path ends " + process.env.GITHUB_ACTION_PATH.split("/").slice(-3).join("/"));
console.log("repository " + process.env.GITHUB_ACTION_REPOSITORY + "@" + process.env.GITHUB_ACTION_REF);
console.log("::warning file=a.c,line=2::from the action");
fs.appendFileSync(process.env.GITHUB_OUTPUT, "greeting=" + sentence + "\\n");
`,
};

const PRE_POST = {
  "action.yml": `name: pre and post
inputs:
  tag:
    default: top
runs:
  using: node20
  pre: pre.js
  main: main.js
  post: post.js
  post-if: always()
`,
  "pre.js": `require("node:fs").appendFileSync(process.env.GITHUB_STATE, "phase=from-pre-" + process.env.INPUT_TAG + "\\n");
console.log("pre ran for " + process.env.INPUT_TAG);
`,
  "main.js": `console.log("main sees state " + process.env.STATE_phase + " on node " + process.version);
require("node:fs").appendFileSync(process.env.GITHUB_STATE, "main=from-main-" + process.env.INPUT_TAG + "\\n");
`,
  "post.js": `console.log("post sees " + process.env.STATE_phase + " and " + process.env.STATE_main);
`,
};

// A composite around an action with pre and post (GitHub runs their pre among the job's pres and
// their post at the job's end), with hashFiles(), working-directory, env, an expression in
// continue-on-error, and if: on its steps, as GitHub's action.yml schema allows them.
const WRAPPER = {
  "action.yml": `name: wrapper
inputs:
  soft:
    default: "true"
  file:
    default: \${{ hashFiles('sub/marker.txt') }}
outputs:
  hash:
    value: \${{ steps.h.outputs.hash }}
runs:
  using: composite
  steps:
    - uses: solstice-test/pre-post@v1
      with:
        tag: nested
    - id: h
      name: Hash in \${{ inputs.soft == 'true' && 'sub' || 'no' }}
      working-directory: sub
      env:
        WHERE: \${{ github.action_repository }}
      run: |
        echo "hash=\${{ hashFiles('sub/marker.txt') }}" >> "$GITHUB_OUTPUT"
        echo "in $(basename "$PWD") for $WHERE, default input \${{ inputs.file }}"
        [ "\${{ github.action_path }}" = "$GITHUB_ACTION_PATH" ] && echo "action path $(basename "$(dirname "$GITHUB_ACTION_PATH")") at $GITHUB_ACTION_REPOSITORY@$GITHUB_ACTION_REF"
      shell: sh
    - run: exit 4
      shell: sh
      continue-on-error: \${{ inputs.soft == 'true' }}
    - if: failure()
      run: echo "never after a soft failure"
      shell: sh
    - if: \${{ success() && hashFiles('sub/marker.txt') != '' }}
      run: echo "went on after a soft failure"
      shell: sh
`,
};

const COMPOSITE = {
  "action.yml": `name: composite
inputs:
  name:
    default: nobody
outputs:
  said:
    value: \${{ steps.greet.outputs.greeting }}
runs:
  using: composite
  steps:
    - run: echo "composite for \${{ inputs.name }} at $GITHUB_ACTION_REPOSITORY"
      shell: sh
    - id: greet
      uses: solstice-test/hello-js@v1
      with:
        who-to-greet: \${{ inputs.name }}
        greeting: Hi
    - if: failure()
      run: echo never
      shell: sh
`,
};

const OLD_NODE = {
  "action.yml": "name: old\nruns:\n  using: node16\n  main: index.js\n",
  "index.js": 'console.log("old action ran on " + process.version);\n',
};

const NODE24 = {
  "action.yml": "name: new\nruns:\n  using: node24\n  main: index.js\n",
  "index.js": 'console.log("node24 action ran on " + process.version);\n',
};

// Not allowed by GitHub's action.yml schema (timeout-minutes on a composite step).
const TIMED = {
  "action.yml": `name: timed
runs:
  using: composite
  steps:
    - run: sleep 1
      shell: sh
      timeout-minutes: 1
`,
};

// A composite that uses itself: GitHub's runner stops it at its depth limit in "Set up job".
const LOOP = {
  "action.yml": "name: loop\nruns:\n  using: composite\n  steps:\n    - uses: solstice-test/loop@v1\n",
};

const DOCKER = {
  "action.yml": "name: docker\nruns:\n  using: docker\n  image: Dockerfile\n",
  Dockerfile: "FROM alpine\n",
};

const REPOSITORY = {
  url: "https://forge.invalid/o/r.git",
  fullName: "o/r",
  commitSha: "0".repeat(40),
  ref: "refs/heads/main",
};

// A guard against a hung job, not a speed check: the one VM job carries Node in (35–105 s under
// TCG, depending on the machine's load) and runs 14 steps, pres and posts.
describe(`actions in the job's VM (${TEST_LABEL} guest, TCG, ${START_MODE_TITLE})`, { timeout: 420_000 }, () => {
  let git: GitHttpServer;
  let cache: string;
  let provider: ActionProvider;

  before(async () => {
    git = await startGitHttpServer();
    cache = await mkdtemp(path.join(tmpdir(), "solstice-actions-cache-"));
    await git.publish("solstice-test/hello-js", HELLO_JS, ["v1"]);
    await git.publish("solstice-test/pre-post", PRE_POST, ["v1"]);
    await git.publish("solstice-test/composite", COMPOSITE, ["v1"]);
    await git.publish("solstice-test/old-node", OLD_NODE, ["v1"]);
    await git.publish("solstice-test/docker", DOCKER, ["v1"]);
    await git.publish("solstice-test/wrapper", WRAPPER, ["v1"]);
    await git.publish("solstice-test/node24", NODE24, ["v1"]);
    await git.publish("solstice-test/timed", TIMED, ["v1"]);
    await git.publish("solstice-test/loop", LOOP, ["v1"]);
    // Node runtimes are shared with the host's real cache: they are pinned and checksum-checked,
    // and downloading them again for every run would only cost time.
    provider = {
      ...hostActionProvider({ log: pino({ level: "silent" }), defaultUrl: git.url }),
      store: hostActionProvider({ log: pino({ level: "silent" }), defaultUrl: git.url, cacheDir: cache }).store,
    };
  });
  after(async () => {
    await git?.close();
    if (cache) await rm(cache, { recursive: true, force: true });
  });

  test("JavaScript actions (node20, node16 on 20, the image's own node24) and nested composites run with inputs, outputs, state, hashFiles(), and pre/post of nested actions after a failure and a cancel", async () => {
    const cancel = new AbortController();
    const run = await runConformanceWorkflow({
      signal: cancel.signal,
      onEvent: ({ body }) => {
        if (body.case === "log" && body.value.lines.some((l) => l.text === "waiting for the cancel")) {
          cancel.abort(new GracefulCancel("cancelled by the test"));
        }
      },
      file: "actions.yml",
      source: JobSource.MANUAL,
      github: {},
      repository: REPOSITORY,
      actions: provider,
      // The image declares a Node 24 of its own (images.yaml `node:`), absent until step 10 makes it.
      catalogEntry: (entry) => ({ ...entry, node: { "24": "/opt/node24/bin/node" } }),
      workflow: `jobs:
  a:
    runs-on: tiny
    steps:
      - uses: solstice-test/pre-post@v1
      - uses: solstice-test/hello-js@v1
        id: hello
        with:
          who-to-greet: Solstice
          unknown-input: x
      - run: echo "got=\${{ steps.hello.outputs.greeting }}"
      - uses: solstice-test/composite@v1
        id: comp
        with:
          name: Nested
      - run: echo "composite=\${{ steps.comp.outputs.said }}"
      - uses: solstice-test/old-node@v1
      - run: mkdir -p sub && echo marker > sub/marker.txt
      - uses: solstice-test/wrapper@v1
        id: wrap
      - run: echo "wrapped=\${{ steps.wrap.outputs.hash }} job=\${{ hashFiles('sub/marker.txt') }}"
      - uses: solstice-test/node24@v1
        continue-on-error: true
      - run: |
          # Stands in for an image's own Node 24: says it is 24, runs on the Node 20 carried in.
          mkdir -p /opt/node24/bin
          cat > /opt/node24/bin/node <<'EOF'
          #!/bin/sh
          if [ "$1" = --version ]; then echo v24.0.0; exit 0; fi
          echo "the image's node ran"
          exec "$(ls -d "$HOME"/_solstice/node/*/bin/node | head -n 1)" "$@"
          EOF
          chmod +x /opt/node24/bin/node
      - uses: solstice-test/node24@v1
      - run: exit 3
      - if: always()
        run: echo "waiting for the cancel"; sleep 120
    outputs:
      greeting: \${{ steps.hello.outputs.greeting }}
      said: \${{ steps.comp.outputs.said }}
`,
    });
    const { text } = run;
    console.log(
      text
        .split("\n")
        .filter((l) => /carried|VM ready|^Action /.test(l))
        .join("\n"),
    );
    assert.equal(run.result.result, Outcome.CANCELLED, text);
    assert.deepEqual(
      run.outcomes,
      [
        [0, "SUCCESS", "SUCCESS"],
        [1, "SUCCESS", "SUCCESS"],
        [2, "SUCCESS", "SUCCESS"],
        [3, "SUCCESS", "SUCCESS"],
        [4, "SUCCESS", "SUCCESS"],
        [5, "SUCCESS", "SUCCESS"],
        [6, "SUCCESS", "SUCCESS"],
        [7, "SUCCESS", "SUCCESS"],
        [8, "SUCCESS", "SUCCESS"],
        [9, "FAILURE", "SUCCESS"],
        [10, "SUCCESS", "SUCCESS"],
        [11, "SUCCESS", "SUCCESS"],
        [12, "FAILURE", "FAILURE"],
        [13, "CANCELLED", "CANCELLED"],
      ],
      text,
    );
    // Pres before every step, the nested action's among them in order; each action run keeps its
    // own state from pre to main to post.
    const firstStep = text.indexOf("main sees state from-pre-top on node v20.");
    assert.match(
      text,
      /Pre Run solstice-test\/pre-post@v1\n(Node 20\.\S+ carried into the guest in .*\n)?pre ran for top\n/,
    );
    assert.match(text, /Pre Run solstice-test\/wrapper@v1 › solstice-test\/pre-post@v1\npre ran for nested\n/);
    assert.ok(text.indexOf("pre ran for top") < text.indexOf("pre ran for nested"), text);
    assert.ok(text.indexOf("pre ran for nested") < firstStep, text);
    assert.match(run.stepLog(0).join("\n"), /main sees state from-pre-top on node v20\./);
    assert.match(run.stepLog(7).join("\n"), /main sees state from-pre-nested on node v20\./);
    // Posts at the job's end, after the failing step and the cancel, in reverse order: the
    // composite's nested action (it ran later) before the job's first step.
    const nestedPost = text.indexOf(
      "Post Run solstice-test/wrapper@v1 › solstice-test/pre-post@v1\npost sees from-pre-nested and from-main-nested",
    );
    const topPost = text.indexOf("Post Run solstice-test/pre-post@v1\npost sees from-pre-top and from-main-top");
    assert.ok(nestedPost > text.indexOf("waiting for the cancel"), text);
    assert.ok(topPost > nestedPost, text);
    // Action outputs reach the job's outputs, which a downstream job reads as needs.<job>.outputs.
    assert.deepEqual(run.result.outputs, { greeting: "Hello, Solstice!", said: "Hi, Nested!" });
    // Inputs with defaults, a required input with no value warned about, an unexpected one too.
    const hello = run.stepLog(1).join("\n");
    assert.match(hello, /said: Hello, Solstice!/);
    assert.match(hello, /node v20\.\d+\.\d+ main=true/);
    assert.match(hello, /action path ends solstice-test\/hello-js\/[0-9a-f]{40}/);
    assert.match(hello, /repository solstice-test\/hello-js@v1/);
    assert.match(text, /Warning: Unexpected input\(s\) 'unknown-input'/);
    assert.match(text, /Warning: Input required and not supplied: nothing/);
    assert.match(run.stepLog(2).join("\n"), /got=Hello, Solstice!/);
    // The composite: inputs.*, its own steps context, a nested JavaScript action, outputs mapped.
    assert.match(run.stepLog(3).join("\n"), /composite for Nested at solstice-test\/composite/);
    assert.match(run.stepLog(3).join("\n"), /said: Hi, Nested!/);
    assert.doesNotMatch(run.stepLog(3).join("\n"), /never/);
    assert.match(run.stepLog(4).join("\n"), /composite=Hi, Nested!/);
    assert.match(text, /node16 is no longer available; this action runs on Node 20/);
    assert.match(run.stepLog(5).join("\n"), /old action ran on v20\./);
    assert.deepEqual(run.result.steps[1]?.annotations?.[0]?.message, "from the action");
    // Composite steps: hashFiles() in run, if and an input default (computed in the guest when
    // the step runs), working-directory, env, name, an expression in continue-on-error.
    const wrapped = run.stepLog(7).join("\n");
    assert.match(text, /▸ Hash in sub\n/);
    const hash = /in sub for solstice-test\/wrapper, default input ([0-9a-f]{64})/.exec(wrapped)?.[1];
    assert.ok(hash, wrapped);
    assert.match(wrapped, /^action path wrapper at solstice-test\/wrapper@v1$/m);
    assert.match(text, /continue-on-error: the composite action goes on/);
    assert.doesNotMatch(wrapped, /never after a soft failure/);
    assert.match(wrapped, /went on after a soft failure/);
    assert.deepEqual(run.stepLog(8), [`wrapped=${hash} job=${hash}`]);
    // The image's own Node: used for the major it declares, refused clearly when it is missing.
    assert.match(
      text,
      /the image declares Node 24 at \/opt\/node24\/bin\/node \(images\.yaml `node:`\), but it does not run/,
    );
    assert.match(text, /Node 24\.0\.0 from the image \(\/opt\/node24\/bin\/node\)/);
    assert.deepEqual(run.stepLog(11).slice(0, 2), [
      "the image's node ran",
      `node24 action ran on ${/old action ran on (v20\.\S+)/.exec(text)?.[1]}`,
    ]);
  });

  test("a Docker action, an unknown ref, a key GitHub's action.yml schema refuses and a composite deeper than 10 levels fail the job before any VM boots, saying why", async () => {
    for (const [uses, why] of [
      ["solstice-test/docker@v1", /is a Docker action \(runs\.using: docker\), which Solstice does not run/],
      ["solstice-test/hello-js@v9", /has no tag or branch `v9`/],
      [
        "solstice-test/timed@v1",
        /action\.yml line 7 \(runs\.steps\.0\.timeout-minutes\): Unexpected value 'timeout-minutes': GitHub's action\.yml schema has no timeout-minutes on a composite action's steps/,
      ],
      ["solstice-test/loop@v1", /actions nest more than 10 levels deep through composite actions/],
    ] as const) {
      const run = await runConformanceWorkflow({
        file: "refused.yml",
        source: JobSource.MANUAL,
        github: {},
        repository: REPOSITORY,
        actions: provider,
        workflow: `jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - uses: ${uses}\n`,
      });
      assert.equal(run.result.result, Outcome.FAILURE);
      assert.match(run.result.reason, why);
      assert.equal(run.result.bootMs, undefined, "no VM was booted");
    }
  });

  test("the host fetches an action once per commit: a second job and a concurrent one use the cache", async () => {
    const fresh = await mkdtemp(path.join(tmpdir(), "solstice-actions-cache-"));
    const store = hostActionProvider({ log: pino({ level: "silent" }), defaultUrl: git.url, cacheDir: fresh }).store;
    const source = { baseUrl: git.url, owner: "solstice-test", name: "old-node", ref: "v1" };
    const signal = new AbortController().signal;
    const before = git.packFetches("solstice-test/old-node");
    const [first, concurrent] = await Promise.all([store.fetch(source, signal), store.fetch(source, signal)]);
    const second = await store.fetch(source, signal);
    await rm(fresh, { recursive: true, force: true });
    assert.equal(git.packFetches("solstice-test/old-node") - before, 1, "one download for three fetches");
    assert.deepEqual([first.cached, concurrent.cached].sort(), [false, true], "one of the two waited for the other");
    assert.equal(second.cached, true);
    assert.equal(second.commit, first.commit);
  });

  test("a private action is fetched with the forge's token on the host, and refused without it, the token in no message", async () => {
    const privateGit = await startGitHttpServer({ token: "forge-token-value" });
    const fresh = await mkdtemp(path.join(tmpdir(), "solstice-actions-cache-"));
    try {
      await privateGit.publish("team/private", OLD_NODE, ["v1"]);
      const store = hostActionProvider({ log: pino({ level: "silent" }), cacheDir: fresh }).store;
      const source = { baseUrl: privateGit.url, owner: "team", name: "private", ref: "v1" };
      const signal = new AbortController().signal;
      await assert.rejects(store.fetch(source, signal), (error: Error) => {
        assert.equal(error.name, "ActionFetchError");
        assert.match(error.message, /team\/private/);
        assert.doesNotMatch(error.message, /forge-token-value/);
        return true;
      });
      const fetched = await store.fetch({ ...source, token: "forge-token-value" }, signal);
      assert.equal(fetched.cached, false);
      assert.equal(privateGit.packFetches("team/private"), 1);
    } finally {
      await privateGit.close();
      await rm(fresh, { recursive: true, force: true });
    }
  });
});
