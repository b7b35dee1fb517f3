import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { OverlayMaker } from "../src/overlay.ts";
import { runCommand } from "../src/run-command.ts";

interface QemuImgInfo {
  "virtual-size": number;
  "backing-filename"?: string;
  "backing-filename-format"?: string;
}

const info = (path: string): QemuImgInfo =>
  JSON.parse(execFileSync("qemu-img", ["info", "--output=json", "-U", path]).toString()) as QemuImgInfo;

test("overlays over one backing file cost one qemu-img; a rebuilt backing gets its own blank", async () => {
  const dir = await mkdtemp(join(tmpdir(), "solstice-overlay-"));
  try {
    const backing = join(dir, "base.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", backing, "1G"]);
    let qemuImgRuns = 0;
    const maker = new OverlayMaker((file, args, opts) => {
      qemuImgRuns++;
      return runCommand(file, args, opts);
    });
    const paths = [1, 2, 3].map((n) => join(dir, `vm${n}.qcow2`));
    for (const path of paths) await maker.create(backing, "qcow2", path);
    assert.equal(qemuImgRuns, 1, "one qemu-img for three overlays of the same backing");
    // What qemu-img itself would have made: the same bytes, the same backing and size.
    const reference = join(dir, "reference.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", reference]);
    for (const path of paths) {
      assert.deepEqual(await readFile(path), await readFile(reference));
      const made = info(path);
      assert.equal(made["backing-filename"], backing);
      assert.equal(made["backing-filename-format"], "qcow2");
      assert.equal(made["virtual-size"], 1024 ** 3);
    }
    // An overlay is never written over an existing file (a run directory's is new).
    await assert.rejects(maker.create(backing, "qcow2", paths[0] as string), /EEXIST/);

    // The image rebuilt (a new file renamed into place, another size): a blank of its own.
    const rebuilt = join(dir, "base.qcow2.part");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", rebuilt, "2G"]);
    await rename(rebuilt, backing);
    await maker.create(backing, "qcow2", join(dir, "vm4.qcow2"));
    assert.equal(qemuImgRuns, 2);
    assert.equal(info(join(dir, "vm4.qcow2"))["virtual-size"], 2 * 1024 ** 3);

    // A backing that is not there is qemu-img's to report, every time.
    await assert.rejects(maker.create(join(dir, "missing.qcow2"), "qcow2", join(dir, "vm5.qcow2")), /qemu-img/);
    assert.equal(qemuImgRuns, 3);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
