import assert from "node:assert/strict";
import { test } from "node:test";
import ssh2 from "ssh2";
import { generateJobKeys } from "../src/index.ts";

test("every generated job key can be read back by the SSH client that will use it", () => {
  // ssh2's generator alone yields an unreadable key about once in 250 pairs; 1,000 jobs would hit it.
  for (let i = 0; i < 1_000; i++) {
    const { client, host } = generateJobKeys();
    for (const key of [client.privateKey, client.publicKey, host.privateKey, host.publicKey]) {
      assert.ok(!(ssh2.utils.parseKey(key) instanceof Error), `job ${i}: unreadable key`);
    }
    assert.notEqual(client.publicKey, host.publicKey);
  }
});
