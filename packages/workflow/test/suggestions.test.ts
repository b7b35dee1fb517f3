import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nearestName, parseWorkflow, WorkflowValidationError } from "../src/index.ts";
import { problemsOf } from "./rejected-workflow.ts";

const T = { timeout: 5_000 };

function problemAt(text: string, key: string) {
  const problem = problemsOf(text).find((p) => p.key === key);
  assert.ok(problem, `no problem at ${key}`);
  return problem;
}

describe("suggestions for what to do about a problem", () => {
  it("names the key or function most likely meant, and nothing for an unrelated word", T, () => {
    assert.equal(nearestName("runs_on", ["name", "runs-on", "steps"]), "runs-on");
    assert.equal(nearestName("Runs-On", ["name", "runs-on"]), "runs-on");
    assert.equal(nearestName("setps", ["name", "runs-on", "steps"]), "steps");
    assert.equal(nearestName("timeout", ["timeout-minutes", "env"]), "timeout-minutes");
    assert.equal(nearestName("frmJSON", ["toJSON", "fromJSON", "format"]), "fromJSON");
    assert.equal(nearestName("colour", ["name", "runs-on", "steps", "env"]), undefined);
    assert.equal(nearestName("", ["name"]), undefined);
  });

  it("says where a key of another level belongs, and what to do instead of an unsupported GitHub key", T, () => {
    const text = `run-name: deploy
jobs:
  a:
    runs-on: tiny
    run: echo
    environment: production
    steps:
      - run: echo
        needs: a
`;
    assert.match(problemAt(text, "run-name").suggestion ?? "", /remove run-name:/);
    assert.match(problemAt(text, "jobs.a.run").suggestion ?? "", /`run` is a step key: put it in a step under steps:/);
    assert.match(problemAt(text, "jobs.a.environment").message, /deployment environments .* are not supported/);
    assert.match(
      problemAt(text, "jobs.a.steps[0].needs").suggestion ?? "",
      /`needs` is a job key: put it under jobs.<job_id>:/,
    );
  });

  it("says how to replace the artifact actions, local actions and Docker actions, and takes actions/cache", T, () => {
    const suggestionFor = (action: string) =>
      problemAt(`jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - uses: ${action}\n`, "jobs.a.steps[0].uses")
        .suggestion ?? "";
    const cache = parseWorkflow(`jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - uses: actions/cache@v4\n`, {
      file: "ci.yml",
    }).jobs[0]?.steps[0];
    assert.equal(cache?.kind === "action" && cache.uses, "actions/cache@v4");
    assert.match(suggestionFor("actions/upload-artifact@v4"), /artifacts are stored by the forge/);
    assert.match(suggestionFor("./.github/actions/build"), /local actions are not run yet/);
    assert.match(suggestionFor("docker://alpine:3.20"), /Docker actions are not run/);
  });

  it("says what to do about an actions/checkout input the built-in checkout does not take", T, () => {
    const suggestionFor = (input: string) =>
      problemAt(
        `jobs:\n  a:\n    runs-on: tiny\n    steps:\n      - uses: actions/checkout@v4\n        with:\n          ${input}: x\n`,
        `jobs.a.steps[0].with.${input}`,
      ).suggestion ?? "";
    assert.equal(suggestionFor("fetch_depth"), "did you mean `fetch-depth`?");
    assert.match(suggestionFor("lfs"), /git lfs pull/);
    assert.match(suggestionFor("ssh-key"), /over HTTPS with token:/);
  });

  it("puts the suggestion on its own line under the problem in the error a forge log shows", T, () => {
    assert.throws(
      () => parseWorkflow("jobs:\n  a:\n    runs-on: tiny\n    setps:\n      - run: echo\n", { file: "ci.yml" }),
      (e: unknown) =>
        e instanceof WorkflowValidationError &&
        /^ci\.yml:4:5: jobs\.a\.setps: unknown key `setps`; allowed here: .*\n {2}suggestion: did you mean `steps`\?$/m.test(
          e.message,
        ),
    );
  });

  it("stops at 500 problems and says the rest were not reported", T, () => {
    const steps = Array.from({ length: 600 }, (_, i) => `      - run: echo\n        bad${i}: x\n`).join("");
    const problems = problemsOf(`jobs:\n  a:\n    runs-on: tiny\n    steps:\n${steps}`);
    assert.equal(problems.length, 501);
    assert.match(problems.at(-1)?.message ?? "", /more than 500 problems; the rest are not reported/);
  });
});
