import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DefaultArtifactClient } from "@actions/artifact";
import * as cache from "@actions/cache";
import { createResultsService, type RuntimeIdentity } from "./results-service.ts";
import { issueRuntimeToken } from "./runtime-token.ts";

// The fake results service spoken to by the official clients themselves, in this process: the
// npm packages @actions/artifact and @actions/cache (what actions/upload-artifact,
// download-artifact and cache bundle), with the variables a runner gives an action.

const secret = randomBytes(32);
const tokenFor = (id: RuntimeIdentity) => issueRuntimeToken({ scp: `Actions.Results:${id.runId}:${id.jobId}` }, secret);

async function serve(flavor: "github" | "forgejo", identities: Map<string, RuntimeIdentity>) {
  let url = "";
  const results = createResultsService({ flavor, baseUrl: () => url, authorize: (t) => identities.get(t) });
  const server = http.createServer((req, res) => {
    if (!results.handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, results, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function actAs(url: string, token: string, workspace: string) {
  Object.assign(process.env, {
    ACTIONS_RUNTIME_TOKEN: token,
    ACTIONS_RESULTS_URL: `${url}/`,
    ACTIONS_CACHE_SERVICE_V2: "True",
    // The libraries refuse a GitHub Enterprise Server (any other host): the fakes stand for github.com.
    GITHUB_SERVER_URL: "https://github.com",
    GITHUB_WORKSPACE: workspace,
    RUNNER_TEMP: path.join(workspace, "_temp"),
  });
}

describe("the fake results service with @actions/artifact and @actions/cache", { timeout: 120_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "solstice-results-"));
    await mkdir(path.join(dir, "_temp"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  for (const flavor of ["forgejo", "github"] as const) {
    test(`${flavor}: an artifact uploaded by one job is listed and downloaded by another job of the run, with the same bytes`, async () => {
      const job1 = { runId: "7", jobId: "1", repository: "acme/app" };
      const job2 = { runId: "7", jobId: "2", repository: "acme/app" };
      const otherRun = { runId: "8", jobId: "3", repository: "acme/app" };
      const identities = new Map([job1, job2, otherRun].map((id) => [tokenFor(id), id]));
      const svc = await serve(flavor, identities);
      try {
        const payload = randomBytes(300_000).toString("base64");
        await writeFile(path.join(dir, "report.txt"), payload);
        actAs(svc.url, tokenFor(job1), dir);
        const client = new DefaultArtifactClient();
        const uploaded = await client.uploadArtifact("report", [path.join(dir, "report.txt")], dir);
        assert.ok(uploaded.id && uploaded.id > 0);
        assert.equal(svc.results.artifacts[0]?.hash, `sha256:${uploaded.digest}`);

        actAs(svc.url, tokenFor(job2), dir);
        const found = await client.getArtifact("report");
        assert.equal(found.artifact.id, uploaded.id);
        const out = path.join(dir, `out-${flavor}`);
        await client.downloadArtifact(found.artifact.id, { path: out });
        assert.equal(await readFile(path.join(out, "report.txt"), "utf8"), payload);

        // Another run sees none of it.
        actAs(svc.url, tokenFor(otherRun), dir);
        await assert.rejects(client.getArtifact("report"));
        // A token the forge never issued is refused at once (401 is not retried).
        actAs(svc.url, issueRuntimeToken({ scp: "Actions.Results:7:1" }, randomBytes(32)), dir);
        await assert.rejects(client.getArtifact("report"), /401/);
        assert.ok(svc.results.calls.some((c) => c.status === 401));
      } finally {
        await svc.close();
      }
    });
  }

  test("github: a cache is restored by its exact key and by a restore-key prefix, only in its repository", async () => {
    const job1 = { runId: "1", jobId: "1", repository: "acme/app" };
    const job2 = { runId: "2", jobId: "2", repository: "acme/app" };
    const stranger = { runId: "3", jobId: "3", repository: "evil/other" };
    const identities = new Map([job1, job2, stranger].map((id) => [tokenFor(id), id]));
    const svc = await serve("github", identities);
    const previous = process.cwd();
    process.chdir(dir);
    try {
      await mkdir(path.join(dir, "deps"), { recursive: true });
      const payload = randomBytes(200_000).toString("hex");
      await writeFile(path.join(dir, "deps", "lib.txt"), payload);
      actAs(svc.url, tokenFor(job1), dir);
      assert.ok(cache.isFeatureAvailable());
      const id = await cache.saveCache(["deps"], "deps-linux-abc");
      assert.ok(id > 0, "saved");
      assert.equal(svc.results.cacheEntries[0]?.key, "deps-linux-abc");

      actAs(svc.url, tokenFor(job2), dir);
      await rm(path.join(dir, "deps"), { recursive: true });
      assert.equal(await cache.restoreCache(["deps"], "deps-linux-abc"), "deps-linux-abc");
      assert.equal(await readFile(path.join(dir, "deps", "lib.txt"), "utf8"), payload);
      await rm(path.join(dir, "deps"), { recursive: true });
      assert.equal(await cache.restoreCache(["deps"], "deps-linux-xyz", ["deps-linux-"]), "deps-linux-abc");
      assert.equal(await readFile(path.join(dir, "deps", "lib.txt"), "utf8"), payload);
      assert.equal(await cache.restoreCache(["deps"], "nothing-like-it", ["other-"]), undefined);

      actAs(svc.url, tokenFor(stranger), dir);
      assert.equal(await cache.restoreCache(["deps"], "deps-linux-abc", ["deps-"]), undefined, "another repository");
    } finally {
      process.chdir(previous);
      await svc.close();
    }
  });
});
