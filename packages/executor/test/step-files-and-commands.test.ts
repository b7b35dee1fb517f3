import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseKeyValueFile, RunnerFileError } from "../src/runner-files.ts";
import { WorkflowCommandReader } from "../src/workflow-commands.ts";

describe("GITHUB_OUTPUT / GITHUB_ENV files", () => {
  it("reads name=value lines and the name<<DELIMITER form, keeping = and blank lines inside values", () => {
    const text = "a=1\nb=x=y\n\nm<<EOF\nline 1\n\nb=not a key\nEOF\nlast=\n";
    assert.deepEqual(parseKeyValueFile(text, "GITHUB_OUTPUT"), {
      a: "1",
      b: "x=y",
      m: "line 1\n\nb=not a key",
      last: "",
    });
  });

  it("fails with a message naming the file when a block is not closed or a line has no form", () => {
    assert.throws(
      () => parseKeyValueFile("m<<EOF\nnever closed\n", "GITHUB_ENV"),
      (e: unknown) => {
        return (
          e instanceof RunnerFileError && /\$GITHUB_ENV: the value of m is not closed by a line `EOF`/.test(e.message)
        );
      },
    );
    assert.throws(() => parseKeyValueFile("just text\n", "GITHUB_OUTPUT"), /neither name=value nor name<<DELIMITER/);
  });
});

describe("workflow commands in step output", () => {
  it("hands ::add-mask:: values to the masker and hides the line; honours stop-commands", () => {
    const masked: string[] = [];
    const reader = new WorkflowCommandReader({ addMask: (v) => masked.push(v), debug: false });
    const shown = [
      "::add-mask::hunter2",
      "::debug::quiet",
      "::stop-commands::tok",
      "::add-mask::not-a-command",
      "::tok::",
      "::add-mask::second",
      "plain",
    ].map((line) => reader.line(line).display);
    assert.deepEqual(masked, ["hunter2", "second"]);
    assert.deepEqual(shown, [
      undefined,
      undefined,
      undefined,
      "::add-mask::not-a-command",
      undefined,
      undefined,
      "plain",
    ]);
  });

  it("records ::error/::warning/::notice with their unescaped file, line, column and title", () => {
    const reader = new WorkflowCommandReader({ addMask: () => {}, debug: true });
    assert.equal(
      reader.line("::error file=a%2Cb.c,line=7,col=2,title=Bad%3A one::broke%0Anext").display?.startsWith("::error"),
      true,
    );
    reader.line("::notice::fyi");
    assert.equal(reader.line("::debug::shown when debugging").display, "::debug::shown when debugging");
    assert.deepEqual(reader.annotations, [
      { level: "error", message: "broke\nnext", title: "Bad: one", file: "a,b.c", line: 7, column: 2 },
      { level: "notice", message: "fyi" },
    ]);
  });
});
