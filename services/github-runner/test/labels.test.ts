import assert from "node:assert/strict";
import { test } from "node:test";
import { checkLabels, fleetLabelOf, jitLabelWarning } from "../src/index.ts";

test("GitHub's own labels written plainly name no fleet label; the one fleet label is found beside them", () => {
  const labels = checkLabels(["self-hosted", "X64", "omnios:vm:omnios-r151054", "omnios-lts:vm:omnios-r151054"]);
  assert.equal(fleetLabelOf(labels), "omnios-r151054");
  assert.throws(() => checkLabels(["self-hosted"]), /name no fleet label/);
});

test("a JIT runner without self-hosted among its labels is warned that runs-on: [self-hosted, …] never matches", () => {
  const warning = jitLabelWarning(checkLabels(["omnios:vm:omnios-r151054"]));
  assert.match(warning ?? "", /lack self-hosted/);
  assert.match(warning ?? "", /"labels": \["self-hosted", "omnios"\]/);
  assert.match(warning ?? "", /--labels self-hosted,omnios:vm:omnios-r151054/);
  assert.equal(jitLabelWarning(checkLabels(["self-hosted", "omnios:vm:omnios-r151054"])), undefined);
});
