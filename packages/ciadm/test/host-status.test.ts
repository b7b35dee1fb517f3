import assert from "node:assert/strict";
import { test } from "node:test";
import type { HostRecord } from "@solstice/db";
import { hostStatus } from "../src/commands/hosts.ts";
import { formatTable } from "../src/table.ts";

const host = (heartbeatSecondsAgo: number, draining: boolean): HostRecord => ({
  id: "h",
  labels: { tiny: 1 },
  maxVms: 1,
  version: "0",
  backend: "qemu",
  accelerator: "tcg",
  startedAt: new Date(0),
  draining,
  lastHeartbeatAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 60 - heartbeatSecondsAgo)),
});
const now = new Date(Date.UTC(2026, 0, 1, 0, 1, 0));

test("a host is offline once its heartbeat is older than the limit, draining or not", () => {
  assert.equal(hostStatus(host(5, false), now, 20), "online");
  assert.equal(hostStatus(host(5, true), now, 20), "draining");
  assert.equal(hostStatus(host(21, false), now, 20), "offline");
  assert.equal(hostStatus(host(21, true), now, 20), "offline");
});

test("tables pad every column to its widest cell", () => {
  assert.equal(
    formatTable(
      ["A", "LONG HEADER", "C"],
      [
        ["wide cell", "x", "end"],
        ["y", "z", ""],
      ],
    ),
    "A          LONG HEADER  C\nwide cell  x            end\ny          z\n",
  );
});
