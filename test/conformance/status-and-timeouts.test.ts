import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { JobSource, Outcome } from "@solstice/protocol";
import { START_MODE, START_MODE_TITLE, TEST_LABEL } from "../support/start-mode.ts";
import { type ConformanceRun, runConformanceWorkflow } from "./workflow-run.ts";

// One GitHub job in one tiny VM (TCG) whose bash is removed after boot: the default shell falls
// back to `sh -e`, `shell: bash` fails saying bash is missing, and the status functions decide
// which steps run after a failure. Then the timeouts: GitHub reads timeout-minutes as whole
// minutes (actions/runner converts the number to Int32), so the smallest real timeouts are one
// minute for a step and two for the job (which includes boot). The guest sleeps meanwhile; the
// run takes about two minutes of wall time and little CPU.
//
// The job's timeout counts its VM's boot, and the step-timeout case must end before it: a tiny
// guest boots cold in 2-10 s, a real distribution's cold boot takes longer (debian-12-fast: 37-51 s
// under TCG on this loaded host, then ~5 s per step), which with two minutes left the job timeout
// to cut the one-minute step short. Such a guest's cold run gets three minutes.
const JOB_MINUTES = START_MODE === "cold" && !TEST_LABEL.startsWith("tiny") ? 3 : 2;
const WORKFLOW = `
on: push
jobs:
  statuses:
    runs-on: tiny
    timeout-minutes: ${JOB_MINUTES}
    steps:
      # 0: no shell given and no bash in the guest: sh -e, which stops at the failing command
      - id: default_shell
        run: |
          echo "bash=[\${BASH_VERSION:-none}]"
          echo "exe=$(readlink /proc/$$/exe)"
          false
          echo "not reached"
      # 1: after a failure, a step without a status function is skipped (implicit success())
      - run: echo skipped after a failure
      # 2-5: failure() and always() run; cancelled() and success() do not
      - if: failure()
        run: echo "failure() ran, job.status=\${{ job.status }}"
      - if: always()
        run: echo "always() ran"
      - if: cancelled()
        run: echo "cancelled() ran"
      - if: success()
        run: echo "success() ran"
      # 6: an explicit bash is not replaced: the step fails, naming the missing program
      - id: explicit_bash
        if: always()
        shell: bash
        run: echo never
      # 7: a step timeout stops the step; the job goes on to the steps that always run
      - id: step_timeout
        if: always()
        timeout-minutes: 1
        run: |
          echo "sleeping past the step timeout"
          sleep 300
      # 8
      - if: always()
        run: echo "after the step timeout"
      # 9: the job timeout ends the job, wherever it is
      - id: job_timeout
        if: always()
        run: |
          echo "sleeping past the job timeout"
          sleep 600
      # 10: after the job timeout, as after a cancel, always() steps still run (GitHub's cancellation)
      - if: always()
        run: echo "always() after the job timeout"
      # 11
      - run: echo "never, the job ended"
`;

describe(`conformance: status functions, shells without bash, step and job timeouts (one ${TEST_LABEL} VM, TCG, ${START_MODE_TITLE})`, {
  timeout: 400_000,
}, () => {
  let run: ConformanceRun;

  test("each step has its expected outcome, and the job fails on its timeout", async () => {
    run = await runConformanceWorkflow({
      workflow: WORKFLOW,
      file: ".github/workflows/statuses.yml",
      source: JobSource.GITHUB,
      github: { ref: "refs/heads/main", sha: "abc123", repository: "acme/app", event_name: "push" },
      repository: { url: "", fullName: "acme/app", commitSha: "abc123", ref: "refs/heads/main" },
      // The image has bash; this guest must not. root's login shell becomes the guest's own sh.
      afterBoot: "rm -f /bin/bash /bin/sh.bash && sed -i 's#:/bin/bash$#:/bin/sh#' /etc/passwd",
    });
    assert.deepEqual(
      run.outcomes,
      [
        [0, "FAILURE", "FAILURE"],
        [1, "SKIPPED", "SKIPPED"],
        [2, "SUCCESS", "SUCCESS"],
        [3, "SUCCESS", "SUCCESS"],
        [4, "SKIPPED", "SKIPPED"],
        [5, "SKIPPED", "SKIPPED"],
        [6, "FAILURE", "FAILURE"],
        [7, "FAILURE", "FAILURE"],
        [8, "SUCCESS", "SUCCESS"],
        [9, "CANCELLED", "CANCELLED"],
        [10, "SUCCESS", "SUCCESS"],
        [11, "SKIPPED", "SKIPPED"],
      ],
      run.text,
    );
    assert.equal(run.result.result, Outcome.FAILURE);
    assert.equal(run.result.reason, `the job exceeded its timeout of ${JOB_MINUTES} min`);
  });

  test("without bash the default shell is sh -e", () => {
    // The guest's own sh: busybox on tiny, dash on Debian; never bash.
    const [bash, exe] = run.stepLog(0);
    assert.equal(bash, "bash=[none]");
    assert.match(exe ?? "", /^exe=\/(usr\/)?bin\/(busybox|dash)$/);
    assert.equal(run.result.steps[0]?.reason, "exit code 1");
  });

  test("status functions after a failure: failure() and always() run, cancelled() and success() do not", () => {
    assert.deepEqual(run.stepLog(2), ["failure() ran, job.status=failure"]);
    assert.deepEqual(run.stepLog(3), ["always() ran"]);
    assert.doesNotMatch(run.text, /skipped after a failure|cancelled\(\) ran|success\(\) ran/);
    assert.equal(run.result.steps[4]?.reason, "condition not met: cancelled()");
  });

  test("shell: bash in a guest without bash fails saying so", () => {
    assert.match(run.result.steps[6]?.reason ?? "", /^shell `bash --noprofile --norc -eo pipefail \{0\}` needs `bash`/);
  });

  test(`timeout-minutes stops the step after one minute; the job timeout ends the job after ${JOB_MINUTES}, and always() steps still run`, () => {
    const stepTimeout = run.result.steps[7];
    assert.equal(stepTimeout?.reason, "timed out after 1 min (timeout-minutes)");
    assert.ok((stepTimeout?.durationMs ?? 0) >= 60_000 && (stepTimeout?.durationMs ?? 0) < 75_000);
    assert.deepEqual(run.stepLog(8), ["after the step timeout"]);
    assert.equal(run.stepLog(9)[0], "sleeping past the job timeout");
    assert.deepEqual(run.stepLog(10), ["always() after the job timeout"]);
    assert.equal(run.result.steps[11]?.reason, "the job was cancelled");
    assert.doesNotMatch(run.text, /never, the job ended/);
  });
});
