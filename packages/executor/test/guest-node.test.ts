import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { chooseGuestNode } from "../src/actions/node-runtime.ts";

describe("which Node a JavaScript action runs on in a guest", () => {
  const linuxX64 = { os: "Linux", arch: "X64" };

  test("the image's own runtime for the major it declares, Node's official build carried in for the others", () => {
    assert.deepEqual(chooseGuestNode("20", linuxX64, { "20": "/usr/bin/node" }), {
      kind: "declared",
      path: "/usr/bin/node",
    });
    assert.deepEqual(chooseGuestNode("24", linuxX64, { "20": "/usr/bin/node" }), { kind: "carried" });
    assert.deepEqual(chooseGuestNode("24", { os: "Linux", arch: "ARM64" }, undefined), { kind: "carried" });
  });

  test("a guest with no official build (riscv64, FreeBSD, illumos) gets none unless its image declares one, and is told how", () => {
    const riscv = chooseGuestNode("20", { os: "Linux", arch: "RISCV64" }, undefined);
    assert.equal(riscv.kind, "none");
    assert.match(
      riscv.kind === "none" ? riscv.reason : "",
      /^no Node 20 runtime for this RISCV64 guest: Node's official Linux builds that Solstice carries in are for X64 and ARM64; declare the image's own Node in images\.yaml \(`node: \{ "20": \/usr\/local\/bin\/node \}`\)$/,
    );
    const freebsd = chooseGuestNode("24", { os: "FreeBSD", arch: "X64" }, { "20": "/usr/local/bin/node20" });
    assert.match(
      freebsd.kind === "none" ? freebsd.reason : "",
      /^no Node 24 runtime for this FreeBSD guest: .* are for Linux; .*; this image declares Node 20 only$/,
    );
    assert.deepEqual(chooseGuestNode("20", { os: "SunOS", arch: "X64" }, { "20": "/opt/ooce/bin/node" }), {
      kind: "declared",
      path: "/opt/ooce/bin/node",
    });
  });
});
