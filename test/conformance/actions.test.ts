import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { type ActionProvider, GracefulCancel, hostActionProvider } from "@solstice/executor";
import { JobSource, Outcome } from "@solstice/protocol";
import { pino } from "pino";
import { type GitHttpServer, startGitHttpServer } from "../support/git-http-server.ts";
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
runs:
  using: node20
  pre: pre.js
  main: main.js
  post: post.js
  post-if: always()
`,
  "pre.js": `require("node:fs").appendFileSync(process.env.GITHUB_STATE, "phase=from-pre\\n");
console.log("pre ran");
`,
  "main.js": `console.log("main sees state " + process.env.STATE_phase + " on node " + process.version);
require("node:fs").appendFileSync(process.env.GITHUB_STATE, "main=from-main\\n");
`,
  "post.js": `console.log("post sees " + process.env.STATE_phase + " and " + process.env.STATE_main);
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

describe("actions in the job's VM", { timeout: 300_000 }, () => {
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

  test("JavaScript actions (node20, node16 on 20) and a nested composite run with inputs, outputs, state, and post after a failure and a cancel", async () => {
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
      run.outcomes.map(([index, outcome]) => [index, outcome]),
      [
        [0, "SUCCESS"],
        [1, "SUCCESS"],
        [2, "SUCCESS"],
        [3, "SUCCESS"],
        [4, "SUCCESS"],
        [5, "SUCCESS"],
        [6, "FAILURE"],
        [7, "CANCELLED"],
      ],
      text,
    );
    // pre before every step, state from pre to main to post, post at the end after the failure.
    assert.ok(text.indexOf("pre ran") < text.indexOf("main sees state from-pre on node v20."), text);
    assert.match(run.stepLog(0).join("\n"), /main sees state from-pre on node v20\./);
    assert.match(text, /Post Run solstice-test\/pre-post@v1\npost sees from-pre and from-main/);
    assert.ok(
      text.lastIndexOf("post sees") > text.indexOf("waiting for the cancel"),
      "post runs at the end, after the failing step and the cancel",
    );
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
  });

  test("a Docker action and an unknown ref fail the job before any VM boots, saying why", async () => {
    for (const [uses, why] of [
      ["solstice-test/docker@v1", /is a Docker action \(runs\.using: docker\), which Solstice does not run/],
      ["solstice-test/hello-js@v9", /has no tag or branch `v9`/],
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
