import assert from "node:assert/strict";
import { test } from "node:test";
import { type JobEvent, JobEventSchema, toJson } from "@solstice/protocol";
import { JobEventStream, MASK, SecretMasker, StreamMasker } from "../src/index.ts";
import { MASK_TEST_FORMS, maskTestForms } from "./mask-forms.ts";

const SECRET = 's3cr3t-Canary/value+with spaces&"quotes"';

test("a secret and each of its encodings are masked wherever they appear in a line", () => {
  const masker = new SecretMasker();
  masker.add(SECRET);
  for (const [name, form] of Object.entries(maskTestForms(SECRET))) {
    const out = masker.mask(`before ${form} after`);
    assert.ok(out.includes(MASK), `${name} not masked: ${out}`);
    assert.ok(!out.includes(form), `${name} still present`);
    assert.ok(out.startsWith("before ") && out.endsWith(" after"), `${name} damaged the text around it: ${out}`);
  }
  assert.ok(MASK_TEST_FORMS.length >= 7);
});

test("a secret base64-encoded inside longer text is masked at every byte alignment", () => {
  const masker = new SecretMasker();
  masker.add(SECRET);
  for (const prefix of ["", "a", "ab", "abc", "abcd"]) {
    const encoded = Buffer.from(`${prefix}${SECRET}tail`).toString("base64");
    const out = masker.mask(encoded);
    assert.ok(out.includes(MASK), `prefix ${JSON.stringify(prefix)}: ${out}`);
    // What is left must not decode back to the secret.
    assert.ok(!Buffer.from(out.replaceAll(MASK, ""), "base64").toString("latin1").includes(SECRET));
  }
});

test("each line of a multi-line secret is masked on its own", () => {
  const masker = new SecretMasker();
  masker.add("-----BEGIN KEY-----\nline-one-AAAA\nline-two-BBBB\n-----END KEY-----");
  assert.equal(masker.mask("got line-two-BBBB here"), `got ${MASK} here`);
  assert.equal(masker.mask("-----END KEY-----"), MASK);
});

test("empty and whitespace values are not registered, so they cannot blank out all output", () => {
  const masker = new SecretMasker();
  assert.equal(masker.add(""), "empty");
  assert.equal(masker.add("  "), "empty");
  assert.equal(masker.mask("nothing to hide"), "nothing to hide");
});

test("a secret cut across two pieces of an overlong line is still masked", () => {
  const masker = new SecretMasker();
  masker.add(SECRET);
  for (let cut = 1; cut < SECRET.length; cut += 1) {
    const stream = new StreamMasker(masker);
    const first = `${"x".repeat(100)}${SECRET.slice(0, cut)}`;
    const second = `${SECRET.slice(cut)}${"y".repeat(10)}`;
    const out = stream.push(first, true) + stream.push(second, false);
    assert.equal(out, `${"x".repeat(100)}${MASK}${"y".repeat(10)}`, `cut at ${cut}`);
  }
});

test("a secret whose tail is still held when the step ends is masked by the flush", () => {
  const masker = new SecretMasker();
  masker.add(SECRET);
  const stream = new StreamMasker(masker);
  const head = stream.push(`abc${SECRET.slice(0, 5)}`, true);
  assert.ok(!head.includes(SECRET.slice(0, 5)));
  assert.equal(head + stream.push(SECRET.slice(5), true) + stream.flush(), `abc${MASK}`);
});

test("lines given to a JobEventStream reach the sink masked, including add-mask values added mid-job", async () => {
  const published: JobEvent[] = [];
  const events = new JobEventStream("job-mask", 1, async (e) => {
    published.push(e);
  });
  events.masker.add(SECRET);
  await events.stepStarted(0, "print");
  events.line(`plain ${SECRET}`, "stdout");
  events.line(`${"z".repeat(10)}${SECRET.slice(0, 7)}`, "stderr", new Date(), true);
  events.line(`${SECRET.slice(7)} end`, "stderr");
  events.masker.add("later-mask-value");
  events.line("::add-mask::later-mask-value", "stdout");
  events.line("said later-mask-value", "system");
  await events.stepFinished(0, {
    outcome: 2,
    conclusion: 2,
    exitCode: 1,
    reason: `exit with ${SECRET}`,
    outputs: { o: SECRET },
  });
  await events.jobFinished(2, `failed: ${SECRET}`);
  await events.drain();
  const text = published.map((e) => JSON.stringify(toJson(JobEventSchema, e))).join("\n");
  assert.ok(!text.includes(SECRET.slice(0, 7)), text);
  assert.ok(!text.includes("later-mask-value"), text);
  assert.ok(text.includes(`plain ${MASK}`));
  assert.ok(text.includes(`${"z".repeat(10)}${MASK} end`) || text.includes(`${MASK} end`));
});
