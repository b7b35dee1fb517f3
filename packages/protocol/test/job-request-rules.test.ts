import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import {
  ActionArchiveSchema,
  actionTokenContext,
  create,
  FleetKeyring,
  generateFleetKey,
  JobRequestSchema,
  JobSource,
  jobRequestProblem,
  parseFleetKeys,
} from "../src/index.ts";

const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("rules")));

function jobWith(archive: Parameters<typeof create<typeof ActionArchiveSchema>>[1]) {
  const jobId = randomUUID();
  return create(JobRequestSchema, {
    jobId,
    attempt: 1,
    source: JobSource.GITHUB,
    owner: "github-acme",
    runsOn: "tiny",
    timeoutSeconds: 60,
    actionArchives: [
      create(ActionArchiveSchema, {
        reference: "acme/hello@v1",
        commitSha: "a".repeat(40),
        tarballUrl: `https://api.github.com/repos/acme/hello/tarball/${"a".repeat(40)}`,
        token: keyring.seal("ghs_download", actionTokenContext(jobId, "acme/hello@v1")),
        ...archive,
      }),
    ],
  });
}

test("an action archive must name a commit and a credential-free http(s) tarball URL, its token sealed", () => {
  assert.equal(jobRequestProblem(jobWith({})), undefined);
  assert.match(
    jobRequestProblem(jobWith({ commitSha: "v1" })) ?? "",
    /acme\/hello@v1.*commit_sha is not a 40-hex commit/,
  );
  assert.match(
    jobRequestProblem(jobWith({ tarballUrl: "https://x-access-token:ghs_plain@api.github.com/t" })) ?? "",
    /tarball_url is not an http\(s\) URL without credentials/,
  );
  assert.match(
    jobRequestProblem(jobWith({ tarballUrl: "file:///etc/passwd" })) ?? "",
    /tarball_url is not an http\(s\) URL/,
  );
  const unsealed = jobWith({});
  const archive = unsealed.actionArchives[0];
  assert.ok(archive?.token);
  archive.token.nonce = new Uint8Array(3);
  assert.match(jobRequestProblem(unsealed) ?? "", /token is not sealed/);
});
