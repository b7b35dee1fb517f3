import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, JobRequestSchema, JobSource } from "@solstice/protocol";
import {
  type GuestFacts,
  guestPlatform,
  runnerVariables,
  runtimeGithubContext,
  stepActionName,
  stepVariables,
} from "../src/step-environment.ts";

const GUEST: GuestFacts = {
  home: "/root",
  workspace: "/root/workspace/app",
  os: "Linux",
  arch: "X64",
  runnerTemp: "/tmp",
  toolCache: "/root/workspace/_tool",
};

function job(source: JobSource, github: Record<string, unknown>, workflowPath = ".github/workflows/ci.yml") {
  return create(JobRequestSchema, {
    jobId: "0a1b2c3d-0000-4000-8000-000000000000",
    attempt: 2,
    source,
    workflowPath,
    workflowJobId: "build",
    repository: {
      url: "https://git.example.org/acme/app.git",
      fullName: "acme/app",
      commitSha: "abc",
      ref: "refs/heads/main",
    },
    contexts: { githubJson: JSON.stringify(github) },
    steps: [
      { index: 0, action: { case: "run", value: { script: "a", shell: "sh -e {0}" } } },
      { index: 1, id: "named", action: { case: "run", value: { script: "b", shell: "sh -e {0}" } } },
      { index: 2, action: { case: "run", value: { script: "c", shell: "sh -e {0}" } } },
      { index: 3, action: { case: "checkout", value: {} } },
    ],
  });
}

function variables(request: ReturnType<typeof job>): Record<string, string> {
  return runnerVariables(request, GUEST, runtimeGithubContext(request, GUEST), false);
}

describe("the standard environment variables", () => {
  it("a GitHub job gets GITHUB_* and RUNNER_* from its github context and no Forgejo names", () => {
    const vars = variables(
      job(JobSource.GITHUB, {
        server_url: "https://github.com",
        repository: "acme/app",
        repository_owner: "acme",
        event_name: "pull_request",
        ref: "refs/pull/7/merge",
        sha: "abc",
        base_ref: "main",
        head_ref: "feature",
        run_id: "991",
        run_number: "12",
        run_attempt: "3",
        actor: "mona",
        workflow: "CI",
      }),
    );
    assert.deepEqual(
      {
        GITHUB_ACTIONS: vars.GITHUB_ACTIONS,
        GITHUB_API_URL: vars.GITHUB_API_URL,
        GITHUB_GRAPHQL_URL: vars.GITHUB_GRAPHQL_URL,
        GITHUB_SERVER_URL: vars.GITHUB_SERVER_URL,
        GITHUB_REF_NAME: vars.GITHUB_REF_NAME,
        GITHUB_REF_TYPE: vars.GITHUB_REF_TYPE,
        GITHUB_BASE_REF: vars.GITHUB_BASE_REF,
        GITHUB_HEAD_REF: vars.GITHUB_HEAD_REF,
        GITHUB_RUN_ID: vars.GITHUB_RUN_ID,
        GITHUB_RUN_NUMBER: vars.GITHUB_RUN_NUMBER,
        GITHUB_RUN_ATTEMPT: vars.GITHUB_RUN_ATTEMPT,
        GITHUB_ACTOR: vars.GITHUB_ACTOR,
        GITHUB_WORKFLOW: vars.GITHUB_WORKFLOW,
        GITHUB_JOB: vars.GITHUB_JOB,
        GITHUB_WORKSPACE: vars.GITHUB_WORKSPACE,
        GITHUB_EVENT_PATH: vars.GITHUB_EVENT_PATH,
        RUNNER_TOOL_CACHE: vars.RUNNER_TOOL_CACHE,
      },
      {
        GITHUB_ACTIONS: "true",
        GITHUB_API_URL: "https://api.github.com",
        GITHUB_GRAPHQL_URL: "https://api.github.com/graphql",
        GITHUB_SERVER_URL: "https://github.com",
        GITHUB_REF_NAME: "7/merge",
        GITHUB_REF_TYPE: "branch",
        GITHUB_BASE_REF: "main",
        GITHUB_HEAD_REF: "feature",
        GITHUB_RUN_ID: "991",
        GITHUB_RUN_NUMBER: "12",
        GITHUB_RUN_ATTEMPT: "3",
        GITHUB_ACTOR: "mona",
        GITHUB_WORKFLOW: "CI",
        GITHUB_JOB: "build",
        GITHUB_WORKSPACE: "/root/workspace/app",
        GITHUB_EVENT_PATH: "/tmp/_github_workflow/event.json",
        RUNNER_TOOL_CACHE: "/root/workspace/_tool",
      },
    );
    assert.deepEqual(
      Object.keys(vars).filter((name) => /^(FORGEJO|GITEA)_/.test(name)),
      [],
    );
    assert.equal(vars.RUNNER_DEBUG, undefined);
  });

  it("a Forgejo job also gets every GITHUB_* as FORGEJO_*, FORGEJO_ACTIONS and GITEA_ACTIONS", () => {
    const vars = variables(job(JobSource.FORGEJO, { server_url: "https://code.example.org", run_number: "4" }));
    assert.equal(vars.GITHUB_API_URL, "https://code.example.org/api/v1");
    assert.equal(vars.GITHUB_GRAPHQL_URL, undefined);
    for (const [name, value] of Object.entries(vars)) {
      if (name.startsWith("GITHUB_")) assert.equal(vars[`FORGEJO_${name.slice(7)}`], value, name);
    }
    assert.equal(vars.FORGEJO_ACTIONS, "true");
    assert.equal(vars.GITEA_ACTIONS, "true");
    assert.equal(vars.FORGEJO_RUN_NUMBER, "4");
  });

  it("a local run of a .forgejo workflow says FORGEJO_ACTIONS=false, as forgejo-runner exec does", () => {
    const vars = variables(job(JobSource.MANUAL, {}, ".forgejo/workflows/ci.yml"));
    assert.equal(vars.FORGEJO_ACTIONS, "false");
    assert.equal(vars.GITEA_ACTIONS, undefined);
    assert.equal(vars.FORGEJO_REPOSITORY, "acme/app");
  });

  it("without a forge's values, the job request fills in repository, sha, ref, server, run id and attempt", () => {
    const vars = variables(job(JobSource.MANUAL, {}));
    assert.equal(vars.GITHUB_REPOSITORY, "acme/app");
    assert.equal(vars.GITHUB_REPOSITORY_OWNER, "acme");
    assert.equal(vars.GITHUB_SHA, "abc");
    assert.equal(vars.GITHUB_REF_NAME, "main");
    assert.equal(vars.GITHUB_SERVER_URL, "https://git.example.org");
    assert.equal(vars.GITHUB_API_URL, "https://git.example.org/api/v3");
    assert.match(vars.GITHUB_RUN_ID ?? "", /^[1-9][0-9]*$/);
    assert.equal(vars.GITHUB_RUN_ATTEMPT, "2");
  });

  it("RUNNER_DEBUG is 1 when debug logging is on", () => {
    const request = job(JobSource.GITHUB, {});
    assert.equal(runnerVariables(request, GUEST, runtimeGithubContext(request, GUEST), true).RUNNER_DEBUG, "1");
  });

  it("GITHUB_ACTION is the step id, else __run, __run_2… and __actions_checkout; a Forgejo job uses the step number", () => {
    const github = job(JobSource.GITHUB, {});
    assert.deepEqual(
      github.steps.map((s) => stepActionName(github, s)),
      ["__run", "named", "__run_2", "__actions_checkout"],
    );
    const forgejo = job(JobSource.FORGEJO, {});
    assert.deepEqual(
      forgejo.steps.map((s) => stepActionName(forgejo, s)),
      ["0", "named", "2", "3"],
    );
    const files = { GITHUB_ENV: "/e", GITHUB_OUTPUT: "/o", GITHUB_PATH: "/p", GITHUB_STEP_SUMMARY: "/s" };
    const step = forgejo.steps[0];
    assert.ok(step);
    assert.equal(stepVariables(forgejo, step, files).FORGEJO_OUTPUT, "/o");
  });

  it("uname names become runner.os and runner.arch", () => {
    assert.deepEqual(guestPlatform("Linux", "x86_64"), { os: "Linux", arch: "X64" });
    assert.deepEqual(guestPlatform("FreeBSD", "arm64"), { os: "FreeBSD", arch: "ARM64" });
  });
});
