import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { FleetKeyring, generateFleetKey, JobSource, Outcome, parseFleetKeys } from "@solstice/protocol";
import { START_MODE_TITLE, TEST_LABEL } from "../support/start-mode.ts";
import { runConformanceWorkflow } from "./workflow-run.ts";

const SECRET = `conformance-${randomBytes(6).toString("hex")}`;

// One workflow, run end to end in one VM of the test run's label (TCG), with its expected per-step outcomes, outputs
// and log. Each step's comment names the Actions behaviour it shows.
const WORKFLOW = `
on: push
jobs:
  conformance:
    runs-on: tiny
    outputs:
      simple: \${{ steps.files.outputs.simple }}
      joined: \${{ steps.files.outputs.simple }}-\${{ github.ref_name }}
    steps:
      # GITHUB_OUTPUT (both forms), GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY, workflow commands
      - id: files
        run: |
          echo "simple=one two" >> "$GITHUB_OUTPUT"
          printf 'multi<<EOF_X\\nline 1\\nline 2\\nEOF_X\\n' >> "$GITHUB_OUTPUT"
          echo "FROM_FILE=bar" >> "$GITHUB_ENV"
          mkdir -p /tmp/tools && printf '#!/bin/sh\\necho tool ran\\n' > /tmp/tools/mytool && chmod +x /tmp/tools/mytool
          echo /tmp/tools >> "$GITHUB_PATH"
          echo "### summary heading" >> "$GITHUB_STEP_SUMMARY"
          echo "::add-mask::s3cr3t-value"
          echo "the value is s3cr3t-value"
          echo "::group::A group"
          echo "::warning file=src/a.c,line=3,col=5::careful here"
          echo "::endgroup::"
          echo "::debug::debug is hidden"
          echo "::stop-commands::pause-token"
          echo "::add-mask::still-visible"
          echo "::pause-token::"
          echo "shown: still-visible"
      # steps context and env from earlier steps, evaluated just before this step
      - name: Reads \${{ steps.files.outcome }}
        run: |
          echo "out=\${{ steps.files.outputs.simple }}"
          echo 'multi=\${{ toJSON(steps.files.outputs.multi) }}'
          echo "env=$FROM_FILE ctx=\${{ env.FROM_FILE }}"
          mytool
          echo "job=\${{ job.status }} sha=\${{ github.sha }}"
      # GITHUB_ENV reaches the env context of later steps, also in text that reads nothing else
      - name: Env \${{ env.FROM_FILE }}
        run: echo "ctx-only=\${{ env.FROM_FILE }}"
      # a secret read in run: is substituted and masked; an if: on env.X set from a secret sees it
      - if: env.FROM_SECRET != ''
        env:
          FROM_SECRET: \${{ secrets.CONFORMANCE_SECRET }}
        run: |
          echo "inline=\${{ secrets.CONFORMANCE_SECRET }} env=$FROM_SECRET"
          test "\${{ secrets.CONFORMANCE_SECRET }}" = "$FROM_SECRET" && echo "secret values agree"
      - id: broken
        continue-on-error: true
        run: exit 3
      - if: steps.broken.outcome == 'failure' && steps.broken.conclusion == 'success'
        run: echo "saw outcome=\${{ steps.broken.outcome }} conclusion=\${{ steps.broken.conclusion }}"
      - id: fails
        shell: sh
        run: echo failing; exit 1
      - run: echo never runs
      - if: failure()
        run: echo "failure branch job=\${{ job.status }}"
      - if: \${{ always() && github.ref == 'refs/heads/main' }}
        run: echo always branch
      - if: cancelled()
        run: echo not cancelled
`;

describe(`conformance: step semantics in a real VM (${TEST_LABEL} guest, TCG, ${START_MODE_TITLE})`, {
  timeout: 300_000,
}, () => {
  test("outputs, env, path, summary, commands, outcomes and job outputs behave as on GitHub", async () => {
    const github = { ref: "refs/heads/main", ref_name: "main", sha: "abc123", repository: "acme/app" };
    const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("conformance")));
    // On the test run's label and in its start mode, as the other conformance files.
    const { result, events, text, outcomes } = await runConformanceWorkflow({
      workflow: WORKFLOW,
      file: "conformance.yml",
      source: JobSource.MANUAL,
      github,
      repository: { url: "", fullName: "acme/app", commitSha: "abc123", ref: "refs/heads/main" },
      secrets: { values: { CONFORMANCE_SECRET: SECRET }, keyring },
    });
    assert.deepEqual(
      outcomes,
      [
        [0, "SUCCESS", "SUCCESS"],
        [1, "SUCCESS", "SUCCESS"],
        [2, "SUCCESS", "SUCCESS"],
        [3, "SUCCESS", "SUCCESS"],
        [4, "FAILURE", "SUCCESS"],
        [5, "SUCCESS", "SUCCESS"],
        [6, "FAILURE", "FAILURE"],
        [7, "SKIPPED", "SKIPPED"],
        [8, "SUCCESS", "SUCCESS"],
        [9, "SUCCESS", "SUCCESS"],
        [10, "SKIPPED", "SKIPPED"],
      ],
      text,
    );
    assert.equal(result.result, Outcome.FAILURE);
    assert.deepEqual(result.steps[0]?.outputs, { simple: "one two", multi: "line 1\nline 2" });
    assert.deepEqual(result.steps[0]?.annotations, [
      { level: "warning", message: "careful here", file: "src/a.c", line: 3, column: 5 },
    ]);
    assert.deepEqual(result.outputs, { simple: "one two", joined: "one two-main" });
    const finished = events.find((e) => e.body.case === "jobFinished");
    assert.ok(finished?.body.case === "jobFinished");
    assert.deepEqual({ ...finished.body.value.outputs }, { simple: "one two", joined: "one two-main" });

    assert.match(text, /the value is \*\*\*/);
    assert.doesNotMatch(text, /s3cr3t-value/);
    assert.match(text, /shown: still-visible/, "::add-mask:: inside stop-commands is not a command");
    assert.match(text, /^::add-mask::still-visible$/m, "commands are logged as written while stopped");
    assert.match(text, /::group::A group/);
    assert.match(text, /::warning file=src\/a\.c,line=3,col=5::careful here/);
    assert.doesNotMatch(text, /debug is hidden/);
    assert.doesNotMatch(text, /pause-token/);
    assert.match(text, /### summary heading/);
    assert.match(text, /out=one two/);
    assert.match(text, /multi="line 1\\nline 2"/);
    assert.match(text, /env=bar ctx=bar/);
    assert.match(text, /ctx-only=bar/);
    const envStep = events.find((e) => e.body.case === "stepStarted" && e.body.value.index === 2);
    assert.equal(envStep?.body.case === "stepStarted" ? envStep.body.value.name : "", "Env bar");
    assert.match(text, /inline=\*\*\* env=\*\*\*/);
    assert.match(text, /secret values agree/);
    assert.ok(!text.includes(SECRET), "the secret is masked everywhere");
    assert.match(text, /tool ran/);
    assert.match(text, /job=success sha=abc123/);
    assert.match(text, /saw outcome=failure conclusion=success/);
    assert.doesNotMatch(text, /never runs/);
    assert.match(text, /failure branch job=failure/);
    assert.match(text, /always branch/);
    const started = events.find((e) => e.body.case === "stepStarted" && e.body.value.index === 1);
    assert.ok(started?.body.case === "stepStarted");
  });
});
