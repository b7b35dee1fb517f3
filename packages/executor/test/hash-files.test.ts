import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import * as glob from "@actions/glob";
import { compileGlobs } from "../src/glob-patterns.ts";
import { combineFileDigests, HashFilesError, hashFilesCommand, hashFilesRequest } from "../src/hash-files.ts";

// The oracle is @actions/glob itself (the library the Actions runner's hashFiles script uses), with
// the runner's combination (facts from actions/runner src/Misc/expressionFunc/hashFiles): files
// outside GITHUB_WORKSPACE and directories are skipped, and the result is the SHA-256 of each
// file's raw SHA-256 digest, in the order the globber yields them; "" when nothing matched.
async function runnerHashFiles(workspace: string, args: string[]): Promise<string> {
  const { patterns, followSymbolicLinks } = hashFilesRequest(args);
  // @actions/core prints ::debug:: lines on stdout; they are not this test's output.
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) =>
    String(chunk).startsWith("::debug::") || write.call(process.stdout, chunk, ...rest)) as typeof write;
  try {
    return await globAndHash(workspace, patterns, followSymbolicLinks);
  } finally {
    process.stdout.write = write;
  }
}

async function globAndHash(workspace: string, patterns: string[], followSymbolicLinks: boolean): Promise<string> {
  const globber = await glob.create(patterns.join("\n"), { followSymbolicLinks });
  const total = createHash("sha256");
  let matched = false;
  for await (const file of globber.globGenerator()) {
    if (!file.startsWith(`${workspace}${path.sep}`) || statSync(file).isDirectory()) continue;
    const hash = createHash("sha256");
    await pipeline(createReadStream(file), hash);
    total.update(hash.digest());
    matched = true;
  }
  return matched ? total.digest("hex") : "";
}

/** Ours, with the guest script run by this machine's sh, find and awk. */
async function ourHashFiles(workspace: string, home: string, args: string[]): Promise<string> {
  const command = hashFilesCommand(args, { workspace, home });
  if (command === undefined) return "";
  const { stdout } = await promisify(execFile)("sh", ["-c", command.script], {
    env: { ...process.env, ...command.env },
  });
  return combineFileDigests(stdout.split("\n"), command.call);
}

describe("hashFiles() computes what the Actions runner computes", () => {
  let root: string;
  let workspace: string;
  const cwd = process.cwd();
  before(async () => {
    root = await realpath(await mkdtemp(path.join(tmpdir(), "solstice-hashfiles-")));
    workspace = path.join(root, "ws");
    const files: Record<string, string> = {
      "package-lock.json": "root lock",
      "a.b": "dot name after a",
      "a/x.txt": "inside a",
      "a/deep/er/package-lock.json": "deep lock",
      "a/deep/er/notes.md": "notes",
      "src/main.c": "int main;",
      "src/util.c": "int util;",
      "src/util.h": "int util();",
      "src/[x].c": "bracket name",
      "src/gen/out.c": "generated",
      ".github/workflows/ci.yml": "on: push",
      ".hidden": "dot file",
      "with space/f i l e.txt": "spaces",
      "Z-upper.txt": "upper sorts first",
      "b/B.txt": "capital",
    };
    for (const [name, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(workspace, name)), { recursive: true });
      await writeFile(path.join(workspace, name), content);
    }
    await mkdir(path.join(root, "outside"), { recursive: true });
    await writeFile(path.join(root, "outside", "secret.txt"), "not in the workspace");
    await symlink(path.join(workspace, "src", "main.c"), path.join(workspace, "link-to-file.c"));
    await symlink(path.join(workspace, "src"), path.join(workspace, "link-to-dir"));
    await symlink(path.join(root, "outside"), path.join(workspace, "link-outside"));
    // @actions/glob roots relative patterns at the process's working directory, as the runner sets it.
    process.chdir(workspace);
  });
  after(async () => {
    process.chdir(cwd);
    await rm(root, { recursive: true, force: true });
  });

  const CASES: string[][] = [
    ["package-lock.json"],
    ["**/package-lock.json"],
    ["**/*.c"],
    ["src/*.c"],
    ["src"],
    ["src/"],
    ["**"],
    ["*"],
    ["a/**", "!a/deep/**"],
    ["**/*.c", "!src/gen/**", "src/gen/out.c"],
    ["**", "!**/*.md", "!.github"],
    ["src/[mu]*.[ch]"],
    ["src/[!m]*.c"],
    ["src/\\[x\\].c"],
    ["src/?ain.c"],
    ["./a/x.txt", "b/*"],
    ["b/*", "a/*"],
    ["with space/*"],
    ["**/deep/**/*.json"],
    ["# a comment", "", "a.b"],
    ["nothing-matches-*"],
    ["link-outside/*"],
    ["link-*"],
    ["--follow-symbolic-links", "link-*/**"],
  ];

  const SELECT_NOTHING = ["nothing-matches-*", "link-outside/*"];
  for (const args of CASES) {
    it(`hashFiles(${args.map((a) => `'${a}'`).join(", ")})`, async () => {
      const expected = await runnerHashFiles(workspace, args);
      assert.equal(expected === "", SELECT_NOTHING.includes(args[0] ?? ""), "the case selects what it is meant to");
      assert.equal(await ourHashFiles(workspace, root, args), expected);
    });
  }

  it("an absolute pattern outside the workspace and one under ~ outside it select nothing", async () => {
    assert.equal(await ourHashFiles(workspace, root, [path.join(root, "outside", "*")]), "");
    assert.equal(await ourHashFiles(workspace, root, ["~/outside/*"]), "");
    assert.notEqual(await ourHashFiles(workspace, root, ["~/ws/a.b"]), "");
  });
});

describe("hashFiles() patterns and options", () => {
  const roots = { workspace: "/w/ws", home: "/w" };

  it("refuses `..` and a `.` segment after the first, as the runner does", () => {
    assert.throws(() => compileGlobs("../x", roots), /Relative pathing '\.' and '\.\.' is not allowed/);
    assert.throws(() => compileGlobs("a/./b", roots), /Relative pathing/);
    assert.doesNotThrow(() => compileGlobs("./a", roots));
  });

  it("accepts only --follow-symbolic-links as an option", () => {
    assert.deepEqual(hashFilesRequest(["--Follow-Symbolic-Links", "a"]), {
      patterns: ["a"],
      followSymbolicLinks: true,
    });
    assert.throws(
      () => hashFilesCommand(["--nope", "a"], roots),
      (e: unknown) => e instanceof HashFilesError && /Invalid glob option --nope/.test(e.message),
    );
  });

  it("searches each literal prefix once, from the workspace, in the order the patterns name them", () => {
    assert.deepEqual(compileGlobs("b/*\na/**\na/deep/*\n!c/*", roots).searchPaths, ["/w/ws/b", "/w/ws/a"]);
    // `/` holds the others, and is walked from the workspace: only files there are hashed.
    assert.deepEqual(compileGlobs("b/*\n/**/x", roots).searchPaths, ["/w/ws"]);
    assert.deepEqual(compileGlobs("/etc/*", roots).searchPaths, []);
  });

  it("fails naming the call when a matched file cannot be read", () => {
    assert.throws(
      () => combineFileDigests(["#1", "!unreadable /w/ws/locked"], "hashFiles('**')"),
      /hashFiles\('\*\*'\) failed: cannot read \/w\/ws\/locked/,
    );
  });
});
