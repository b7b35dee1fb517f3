import assert from "node:assert/strict";
import { test } from "node:test";
import { generateJobKeys } from "@solstice/ssh";
import { parse } from "yaml";
import { cloudConfig } from "../src/seed-iso.ts";

test("the job's cloud-config is YAML with its keys, and turns off OpenSSH's per-source penalties only where sshd knows them", () => {
  const keys = generateJobKeys();
  const text = cloudConfig(keys);
  assert.ok(text.startsWith("#cloud-config\n"));
  const config = parse(text) as {
    ssh_authorized_keys: string[];
    ssh_keys: { ed25519_private: string; ed25519_public: string };
    bootcmd: string[];
  };
  assert.deepEqual(config.ssh_authorized_keys, [keys.client.publicKey]);
  assert.equal(config.ssh_keys.ed25519_private.trim(), keys.host.privateKey.trim());
  assert.equal(config.ssh_keys.ed25519_public, keys.host.publicKey);
  assert.equal(config.bootcmd.length, 1);
  assert.match(config.bootcmd[0] ?? "", /^if grep -qsai persourcepenalties \/usr\/sbin\/sshd; then /);
  assert.match(
    config.bootcmd[0] ?? "",
    /echo 'PerSourcePenalties no' > \/etc\/ssh\/sshd_config\.d\/00-solstice-ci\.conf; fi$/,
  );
});
