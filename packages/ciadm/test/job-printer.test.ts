import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  create,
  type JobEvent,
  JobEventSchema,
  LogStream,
  type MessageInitShape,
  Outcome,
  SCHEMA_VERSION,
} from "@solstice/protocol";
import { formatSummary, JobPrinter } from "../src/job-printer.ts";

// The printer of `ciadm run` (and `ciadm logs`), fed the events a job sends, as a terminal shows them.

type Body = MessageInitShape<typeof JobEventSchema>["body"];

function events(bodies: Body[]): JobEvent[] {
  return bodies.map((body, i) =>
    create(JobEventSchema, { schemaVersion: SCHEMA_VERSION, jobId: "j", attempt: 1, seq: BigInt(i + 1), body }),
  );
}

function print(bodies: Body[], stepNames?: string[]) {
  let out = "";
  const printer = new JobPrinter(
    "build",
    3,
    (text) => {
      out += text;
    },
    { color: false, ...(stepNames ? { stepNames } : {}) },
  );
  let job: ReturnType<JobPrinter["handle"]>;
  for (const event of events(bodies)) job = printer.handle(event) ?? job;
  assert.ok(job, "the job finished");
  return { out, job, summary: formatSummary([job]) };
}

const log = (stepIndex: number, ...texts: string[]): Body => ({
  case: "log",
  value: { stepIndex, lines: texts.map((text) => ({ text, stream: LogStream.STDOUT })) },
});
const finished = (index: number, outcome: Outcome, reason = ""): Body => ({
  case: "stepFinished",
  value: { index, outcome, conclusion: outcome, exitCode: outcome === Outcome.SUCCESS ? 0 : -1, reason },
});

describe("ciadm's job printer", () => {
  test("shows a skipped step with its name and the job's outputs in the summary", () => {
    const { out, summary } = print(
      [
        { case: "stepStarted", value: { index: 0, name: "Compute" } },
        finished(0, Outcome.SUCCESS),
        finished(1, Outcome.SKIPPED, "condition not met: failure()"),
        { case: "stepStarted", value: { index: 2, name: "Last" } },
        finished(2, Outcome.SUCCESS),
        {
          case: "jobFinished",
          value: { result: Outcome.SUCCESS, outputs: { version: "1.2.3", token: "***", notes: "a\nb" } },
        },
      ],
      ["Compute", "Only on failure", "Last"],
    );
    assert.match(out, /⊘ Only on failure skipped: condition not met: failure\(\)/);
    assert.match(summary, /\n {4}output version = 1\.2\.3\n {4}output token = \*\*\*\n {4}output notes = "a\\nb"\n/);
  });

  test("shows ::error, ::warning and ::notice lines as annotations and lists them in the summary", () => {
    const { out, job, summary } = print([
      { case: "stepStarted", value: { index: 0, name: "Lint" } },
      log(
        0,
        "plain line",
        "::warning file=a.c,line=2::unused variable",
        "::error file=src/b.c,line=7,col=3,title=Syntax::expected ;%0Aseen }",
        "::notice::done",
        "::group::not an annotation",
      ),
      finished(0, Outcome.SUCCESS),
      { case: "jobFinished", value: { result: Outcome.SUCCESS } },
    ]);
    assert.match(out, /│ plain line\n/);
    assert.match(out, /\n {2}▲ warning a\.c:2: unused variable\n/);
    assert.match(out, /\n {2}✘ error src\/b\.c:7:3: Syntax: expected ;\n {4}seen }\n/);
    assert.match(out, /\n {2}● notice: done\n/);
    assert.match(out, /│ ::group::not an annotation\n/);
    assert.doesNotMatch(out, /::warning/);
    assert.deepEqual(
      job.annotations?.map((a) => [a.level, a.step, a.file ?? "", a.line ?? 0]),
      [
        ["warning", "Lint", "a.c", 2],
        ["error", "Lint", "src/b.c", 7],
        ["notice", "Lint", "", 0],
      ],
    );
    assert.match(summary, /\n {4}warning a\.c:2: unused variable \(step "Lint"\)\n/);
    assert.match(summary, /\n {4}error src\/b\.c:7:3: Syntax: expected ; \(step "Lint"\)\n {6}seen }\n/);
  });
});
