import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import {
  create,
  FleetKeyError,
  FleetKeyring,
  fromBinary,
  generateFleetKey,
  JobRequestSchema,
  loadFleetKeyring,
  parseFleetKeys,
  requireFleetKeyring,
  SealedSchema,
  secretContext,
  toBinary,
} from "../src/index.ts";

const ring = (...entries: string[]) => new FleetKeyring(parseFleetKeys(entries.join("\n")));

test("a sealed secret unseals to its value and its bytes do not contain it", () => {
  const keys = ring(generateFleetKey("k1"));
  const sealed = keys.seal("canary-Zq81-secret", secretContext("job-1", "TOKEN"));
  assert.equal(sealed.keyId, "k1");
  assert.equal(sealed.nonce.length, 12);
  const wire = toBinary(SealedSchema, sealed);
  assert.ok(!Buffer.from(wire).toString("latin1").includes("canary-Zq81-secret"));
  assert.equal(keys.unseal(fromBinary(SealedSchema, wire), secretContext("job-1", "TOKEN")), "canary-Zq81-secret");
});

test("sealing the same value twice gives different ciphertexts (fresh nonce)", () => {
  const keys = ring(generateFleetKey("k1"));
  const a = keys.seal("same", "ctx");
  const b = keys.seal("same", "ctx");
  assert.notDeepEqual(Buffer.from(a.nonce), Buffer.from(b.nonce));
  assert.notDeepEqual(Buffer.from(a.ciphertext), Buffer.from(b.ciphertext));
});

test("after rotation a service holding new and old keys unseals both and seals with the new one", () => {
  const oldKey = generateFleetKey("old");
  const newKey = generateFleetKey("new");
  const sealedOld = ring(oldKey).seal("v-old", "ctx");
  const rotated = ring(newKey, oldKey);
  assert.equal(rotated.unseal(sealedOld, "ctx"), "v-old");
  const sealedNew = rotated.seal("v-new", "ctx");
  assert.equal(sealedNew.keyId, "new");
  assert.equal(ring(newKey).unseal(sealedNew, "ctx"), "v-new");
});

test("a value sealed with a key the service lacks fails with an error naming that key id", () => {
  const sealed = ring(generateFleetKey("gone-2025")).seal("v", "ctx");
  assert.throws(
    () => ring(generateFleetKey("k2")).unseal(sealed, "ctx"),
    (e: unknown) =>
      e instanceof FleetKeyError &&
      e.code === "unknown_key_id" &&
      e.message.includes('"gone-2025"') &&
      e.hint.includes("gone-2025"),
  );
});

test("a sealed value moved to another job or secret name, or altered, does not unseal", () => {
  const keys = ring(generateFleetKey("k1"));
  const sealed = keys.seal("v", secretContext("job-1", "A"));
  for (const ctx of [secretContext("job-2", "A"), secretContext("job-1", "B")]) {
    assert.throws(
      () => keys.unseal(sealed, ctx),
      (e: unknown) => e instanceof FleetKeyError && e.code === "unseal_failed",
    );
  }
  const tampered = create(SealedSchema, { ...sealed, ciphertext: Buffer.from(sealed.ciphertext).fill(1, 0, 1) });
  assert.throws(() => keys.unseal(tampered, secretContext("job-1", "A")), FleetKeyError);
});

test("malformed key entries are refused without echoing key material", () => {
  const material = "c2VjcmV0LW1hdGVyaWFsLXRoYXQtaXMtbm90LTMyLWJ5dGVz";
  assert.throws(
    () => ring(`short:${material}`),
    (e: unknown) => e instanceof FleetKeyError && e.code === "bad_fleet_key" && !e.message.includes(material),
  );
  assert.throws(() => parseFleetKeys("no-colon-here"), FleetKeyError);
  assert.throws(
    () => new FleetKeyring([]),
    (e: unknown) => e instanceof FleetKeyError && e.code === "no_fleet_key",
  );
});

test("keys load from SOLSTICE_FLEET_KEYS and from a keys file; a service without either is refused", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "fleet-keys-"));
  try {
    const file = path.join(dir, "keys");
    writeFileSync(file, `# fleet keys\n${generateFleetKey("filekey")}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    assert.deepEqual(loadFleetKeyring({ SOLSTICE_FLEET_KEYS_FILE: file })?.keyIds, ["filekey"]);
    const both = loadFleetKeyring({ SOLSTICE_FLEET_KEYS: generateFleetKey("env"), SOLSTICE_FLEET_KEYS_FILE: file });
    assert.deepEqual(both?.keyIds, ["env", "filekey"]);
    assert.equal(loadFleetKeyring({}), undefined);
    assert.throws(
      () => requireFleetKeyring("orchestrator", {}),
      (e: unknown) => e instanceof FleetKeyError && e.code === "no_fleet_key" && e.hint.includes("ciadm keys generate"),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a JobRequest carries sealed secrets without their plaintext on the wire", () => {
  const keys = ring(generateFleetKey("k1"));
  const job = create(JobRequestSchema, {
    jobId: "j",
    secrets: [{ name: "TOKEN", value: keys.seal("plain-canary-77", secretContext("j", "TOKEN")) }],
  });
  const bytes = Buffer.from(toBinary(JobRequestSchema, job)).toString("latin1");
  assert.ok(!bytes.includes("plain-canary-77"));
  const back = fromBinary(JobRequestSchema, Buffer.from(bytes, "latin1"));
  const secret = back.secrets[0];
  assert.ok(secret?.value);
  assert.equal(keys.unseal(secret.value, secretContext("j", "TOKEN")), "plain-canary-77");
});
