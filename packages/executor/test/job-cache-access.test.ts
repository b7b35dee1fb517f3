import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, JobRequestSchema, JobSource } from "@solstice/protocol";
import { cacheScope, openJobCache } from "../src/job-cache-access.ts";
import { SecretMasker } from "../src/secret-masker.ts";

const T = { timeout: 5_000 };

function job(source: JobSource, url = "https://forge.example/Acme/App.git", fullName = "Acme/App") {
  return create(JobRequestSchema, { source, repository: { url, fullName } });
}

/** A stand-in for the job cache server's access: records what was opened and closed. */
function recordingAccess() {
  const opened: string[] = [];
  const closed: string[] = [];
  return {
    opened,
    closed,
    open(scope: string) {
      opened.push(scope);
      const credential = `credential-${opened.length}-0123456789abcdef`;
      return {
        url: `http://10.0.2.2:4000/${credential}/`,
        credential,
        close: async () => {
          closed.push(scope);
        },
      };
    },
  };
}

describe("a job's way into the host's job cache", () => {
  it(
    "a Forgejo job with actions gets ACTIONS_CACHE_URL for its repository's scope, its credential masked, closed at the end",
    T,
    async () => {
      const access = recordingAccess();
      const masker = new SecretMasker();
      const session = openJobCache(access, job(JobSource.FORGEJO), true, masker);
      assert.deepEqual(access.opened, ["forge.example/acme/app"]);
      assert.equal(session.variables.ACTIONS_CACHE_URL, "http://10.0.2.2:4000/credential-1-0123456789abcdef/");
      assert.equal(masker.mask(`url ${session.variables.ACTIONS_CACHE_URL}`), "url http://10.0.2.2:4000/***/");
      await session.close();
      assert.deepEqual(access.closed, ["forge.example/acme/app"]);
    },
  );

  it("a GitHub job keeps GitHub's cache, and a job without actions opens nothing", T, () => {
    const access = recordingAccess();
    const masker = new SecretMasker();
    assert.deepEqual(openJobCache(access, job(JobSource.GITHUB), true, masker).variables, {});
    assert.deepEqual(openJobCache(access, job(JobSource.FORGEJO), false, masker).variables, {});
    assert.deepEqual(openJobCache(undefined, job(JobSource.FORGEJO), true, masker).variables, {});
    assert.deepEqual(access.opened, []);
  });

  it("scopes by the forge's host and the repository's name, so two forges' acme/app never share", T, () => {
    assert.equal(cacheScope(job(JobSource.FORGEJO)), "forge.example/acme/app");
    assert.equal(cacheScope(job(JobSource.FORGEJO, "https://other.example/acme/app")), "other.example/acme/app");
    assert.equal(cacheScope(job(JobSource.MANUAL, "git@forge.example:acme/app.git")), "acme/app");
    assert.equal(cacheScope(job(JobSource.MANUAL, "", "")), "local/workspace");
  });
});
