import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { actionsBaseUrl, createForgeClient, LogRowSchema, Result, RunnerService } from "@solstice/forgejo-runner";
import { type FakeForgejo, startFakeForgejo } from "./fake-forgejo.ts";

// The fake's behaviour against ../../../../shared/protocols/forgejo-runner.md, through the same
// generated service a runner uses.

const WORKFLOW = `name: ci
jobs:
  build:
    name: build
    runs-on: tiny
    steps:
      - name: one
        run: echo one
      - run: echo two
`;

async function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  try {
    await call;
    return undefined;
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

const rows = (...contents: string[]) =>
  contents.map((content) => create(LogRowSchema, { time: timestampFromDate(new Date()), content }));

describe("the fake Forgejo", () => {
  let forge: FakeForgejo;
  before(async () => {
    forge = await startFakeForgejo();
    forge.addRegistrationToken("reg-token");
  });
  after(() => forge.close());

  async function registered(labels = ["tiny"]) {
    const anon = createForgeClient({ address: `${forge.url}/` });
    const { runner } = await anon.runner.register({ name: "r1", token: "reg-token", version: "t", labels });
    assert.ok(runner);
    return { runner, client: createForgeClient({ address: forge.url, credentials: runner }) };
  }

  test("Ping answers Hello with the data and needs no credentials", async () => {
    const client = createForgeClient({ address: forge.url });
    assert.equal((await client.ping.ping({ data: "solstice" })).data, "Hello, solstice!");
  });

  test("Register refuses an empty name, an unknown and a revoked token with invalid_argument", async () => {
    const client = createForgeClient({ address: forge.url });
    assert.equal(await codeOf(client.runner.register({ name: "", token: "reg-token" })), Code.InvalidArgument);
    assert.equal(await codeOf(client.runner.register({ name: "x", token: "nope" })), Code.InvalidArgument);
    forge.addRegistrationToken("old");
    forge.revokeRegistrationToken("old");
    assert.equal(await codeOf(client.runner.register({ name: "x", token: "old" })), Code.InvalidArgument);
  });

  test("Register returns a uuid and token, and the registration token stays reusable", async () => {
    const a = await registered();
    const b = await registered();
    assert.match(a.runner.uuid, /^[0-9a-f-]{36}$/);
    assert.match(a.runner.token, /^[0-9a-f]{40}$/);
    assert.notEqual(a.runner.uuid, b.runner.uuid);
    assert.deepEqual(forge.runners.get(a.runner.uuid)?.labels, ["tiny"]);
  });

  test("calls without the right runner uuid and token are unauthenticated", async () => {
    const { runner } = await registered();
    const none = createForgeClient({ address: forge.url });
    const wrong = createForgeClient({ address: forge.url, credentials: { uuid: runner.uuid, token: "bad" } });
    assert.equal(await codeOf(none.runner.declare({ version: "1" })), Code.Unauthenticated);
    assert.equal(await codeOf(wrong.runner.fetchTask({})), Code.Unauthenticated);
    forge.deleteRunner(runner.uuid);
    const deleted = createForgeClient({ address: forge.url, credentials: runner });
    assert.equal(await codeOf(deleted.runner.declare({ version: "1" })), Code.Unauthenticated);
  });

  test("Declare replaces the labels and version", async () => {
    const { runner, client } = await registered();
    const res = await client.runner.declare({ version: "2.0", labels: ["a", "b"] });
    assert.deepEqual(res.runner?.labels, ["a", "b"]);
    assert.equal(forge.runners.get(runner.uuid)?.version, "2.0");
  });

  test("FetchTask assigns a matching job once, with its payload, context and token secrets", async () => {
    const { client } = await registered(["tiny", "other"]);
    const other = await registered(["nomatch"]);
    const jobId = forge.queueJob({ workflow: WORKFLOW, secrets: { S: "v" } });
    assert.equal((await other.client.runner.fetchTask({ tasksVersion: 0n })).task, undefined);
    const res = await client.runner.fetchTask({ tasksVersion: 0n });
    const task = res.task;
    assert.ok(task);
    assert.equal(res.tasksVersion, forge.tasksVersion);
    assert.equal(new TextDecoder().decode(task.workflowPayload), WORKFLOW);
    assert.equal(task.context?.repository, "alice/demo");
    assert.ok(task.context?.forgejo_default_actions_url);
    assert.equal(task.secrets.S, "v");
    assert.equal(task.secrets.FORGEJO_TOKEN, task.secrets.GITHUB_TOKEN);
    assert.equal(forge.taskOfJob(jobId)?.steps.length, 2);
    assert.equal((await client.runner.fetchTask({ tasksVersion: 0n })).task, undefined, "a job goes to one runner");
  });

  test("FetchTask with the current tasks_version answers at once without a task", async () => {
    const { client } = await registered(["lonely"]);
    const first = await client.runner.fetchTask({ tasksVersion: 0n });
    forge.queueJob({ workflow: WORKFLOW.replace("runs-on: tiny", "runs-on: lonely") });
    const stale = await client.runner.fetchTask({ tasksVersion: first.tasksVersion });
    assert.ok(stale.task, "a queued job bumps the version, so the old version gets a task");
    const same = await client.runner.fetchTask({ tasksVersion: forge.tasksVersion });
    assert.equal(same.task, undefined);
  });

  test("a FetchTask retried with the same request key gets the same task again", async () => {
    const { client } = await registered(["keyed"]);
    forge.queueJob({ workflow: WORKFLOW.replace("runs-on: tiny", "runs-on: keyed") });
    const headers = { "x-runner-request-key": "retried-key" };
    const first = await client.runner.fetchTask({ tasksVersion: 0n }, { headers });
    const again = await client.runner.fetchTask({ tasksVersion: 0n }, { headers });
    assert.equal(again.task?.id, first.task?.id);
    assert.equal(again.tasksVersion, 0n);
  });

  async function assignedTask(label: string) {
    const reg = await registered([label]);
    forge.queueJob({ workflow: WORKFLOW.replace("runs-on: tiny", `runs-on: ${label}`) });
    const { task } = await reg.client.runner.fetchTask({ tasksVersion: 0n });
    assert.ok(task);
    return { ...reg, task };
  }

  test("UpdateLog appends, de-duplicates overlap, stores nothing past a gap, and archives on no_more", async () => {
    const { client, task } = await assignedTask("logs");
    const log = (index: bigint, r: ReturnType<typeof rows>, noMore = false) =>
      client.runner.updateLog({ taskId: task.id, index, rows: r, noMore });
    assert.equal((await log(0n, rows("a", "b"))).ackIndex, 2n);
    assert.equal((await log(1n, rows("b", "c"))).ackIndex, 3n, "overlap is de-duplicated");
    assert.equal((await log(5n, rows("x"))).ackIndex, 3n, "a gap stores nothing");
    assert.equal((await log(0n, rows("a"))).ackIndex, 3n, "a pure duplicate stores nothing");
    assert.equal((await log(3n, [], true)).ackIndex, 3n, "no_more without rows is ignored");
    assert.equal((await log(3n, rows("d"), true)).ackIndex, 4n);
    assert.equal(await codeOf(log(4n, rows("e"))), Code.AlreadyExists);
    const stored = forge.tasks.get(task.id);
    assert.deepEqual(
      stored?.log.map((l) => l.content),
      ["a", "b", "c", "d"],
    );
    assert.equal(stored?.logArchived, true);
  });

  test("UpdateTask and UpdateLog on another runner's task fail with internal", async () => {
    const { task } = await assignedTask("mine");
    const stranger = await registered(["mine"]);
    assert.equal(await codeOf(stranger.client.runner.updateTask({ state: { id: task.id } })), Code.Internal);
    assert.equal(await codeOf(stranger.client.runner.updateLog({ taskId: task.id, rows: rows("x") })), Code.Internal);
    assert.equal(await codeOf(stranger.client.runner.updateTask({})), Code.InvalidArgument);
  });

  test("UpdateTask stores step ranges, keeps the first value of an output, and ignores input after the end", async () => {
    const { client, task } = await assignedTask("steps");
    const now = timestampFromDate(new Date());
    const first = await client.runner.updateTask({
      state: { id: task.id, startedAt: now, steps: [{ id: 0n, startedAt: now, logIndex: 1n, logLength: 2n }] },
      outputs: { a: "1" },
    });
    assert.equal(first.state?.result, Result.UNSPECIFIED);
    assert.deepEqual(first.sentOutputs, ["a"]);
    const stored = forge.tasks.get(task.id);
    assert.equal(stored?.steps[0]?.status, "running");
    const final = await client.runner.updateTask({
      state: {
        id: task.id,
        result: Result.FAILURE,
        stoppedAt: now,
        steps: [
          { id: 0n, result: Result.SUCCESS, logIndex: 1n, logLength: 3n },
          { id: 1n, result: Result.FAILURE },
        ],
      },
      outputs: { a: "2", b: "3" },
    });
    assert.equal(final.state?.result, Result.FAILURE);
    assert.deepEqual(final.sentOutputs.sort(), ["a", "b"]);
    assert.equal(stored?.outputs.get("a"), "1", "first value wins");
    assert.equal(stored?.steps[0]?.logLength, 3n);
    assert.equal(stored?.steps[1]?.result, Result.FAILURE);
    const late = await client.runner.updateTask({ state: { id: task.id, result: Result.SUCCESS } });
    assert.equal(late.state?.result, Result.FAILURE, "a finished task keeps its result");
  });

  test("a cancelled or timed-out task answers the next UpdateTask with CANCELLED or FAILURE", async () => {
    const a = await assignedTask("cancel-a");
    forge.cancel(a.task.id);
    assert.equal((await a.client.runner.updateTask({ state: { id: a.task.id } })).state?.result, Result.CANCELLED);
    const b = await assignedTask("cancel-b");
    forge.failTask(b.task.id);
    assert.equal((await b.client.runner.updateTask({ state: { id: b.task.id } })).state?.result, Result.FAILURE);
  });

  test("the JSON codec is served too, with int64 as strings", async () => {
    const { runner } = await registered();
    const transport = createConnectTransport({
      baseUrl: actionsBaseUrl(forge.url),
      httpVersion: "1.1",
      useBinaryFormat: false,
    });
    const json = createClient(RunnerService, transport);
    const res = await json.fetchTask(
      { tasksVersion: 0n },
      { headers: { "x-runner-uuid": runner.uuid, "x-runner-token": runner.token } },
    );
    assert.equal(typeof res.tasksVersion, "bigint");
    assert.ok(forge.calls.some((c) => c.contentType.startsWith("application/json")));
    const raw = await fetch(`${actionsBaseUrl(forge.url)}/runner.v1.RunnerService/FetchTask`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-runner-uuid": runner.uuid,
        "x-runner-token": runner.token,
      },
      body: JSON.stringify({ tasksVersion: "0" }),
    });
    assert.equal(raw.status, 200);
    assert.equal(typeof ((await raw.json()) as { tasksVersion: unknown }).tasksVersion, "string");
    const wrong = await fetch(`${actionsBaseUrl(forge.url)}/runner.v1.RunnerService/Declare`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(wrong.status, 401);
    assert.deepEqual(await wrong.json(), { code: "unauthenticated", message: "unregistered runner" });
  });

  test("an unknown path is 404 and a forge that went away resets connections", async () => {
    assert.equal((await fetch(`${forge.url}/api/actions/nope.v1.X/Y`, { method: "POST" })).status, 404);
    forge.goAway();
    const client = createForgeClient({ address: forge.url, callTimeoutMs: 2000 });
    assert.notEqual(await codeOf(client.ping.ping({ data: "x" })), undefined);
    await forge.comeBack();
    assert.equal((await client.ping.ping({ data: "x" })).data, "Hello, x!");
  });

  test("a forge that is down refuses connections, and one that hangs never answers, until it is back", async () => {
    const client = createForgeClient({ address: forge.url, callTimeoutMs: 500 });
    forge.goAway("refuse");
    assert.notEqual(await codeOf(client.ping.ping({ data: "x" })), undefined, "the call fails");
    const refused = await new Promise<string | undefined>((resolve) => {
      const socket = connect(Number(new URL(forge.url).port), "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve("connected");
      });
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code));
    });
    assert.equal(refused, "ECONNREFUSED", "nothing listens on the port");
    await forge.comeBack();
    assert.equal((await client.ping.ping({ data: "back" })).data, "Hello, back!");
    forge.goAway("hang");
    const started = Date.now();
    assert.equal(await codeOf(client.ping.ping({ data: "x" })), Code.DeadlineExceeded);
    assert.ok(Date.now() - started >= 450, "the call waited for its deadline");
    await forge.comeBack();
    assert.equal((await client.ping.ping({ data: "again" })).data, "Hello, again!");
  });

  test("a runner registered offline from a secret exists with the uuid made from it, and Declare never returns a token", async () => {
    const secret = "0123456789012345678901234567890123456789";
    const uuid = forge.registerOffline({ secret, name: "offline", labels: ["tiny"], version: "v1" });
    assert.equal(uuid, "30313233-3435-3637-3839-303132333435");
    const client = createForgeClient({ address: forge.url, credentials: { uuid, token: secret } });
    const { runner } = await client.runner.declare({ version: "v2", labels: ["tiny", "more"] });
    assert.equal(runner?.uuid, uuid);
    assert.equal(runner?.token, "");
    assert.deepEqual(forge.runners.get(uuid)?.labels, ["tiny", "more"]);
    assert.equal(forge.registerOffline({ secret, name: "renamed" }), uuid, "running it again updates the same runner");
    assert.equal(forge.runners.get(uuid)?.name, "renamed");
  });

  test("the stored log reads as the server writes it: UTC time with seven decimals, then the content", async () => {
    const { client, task } = await assignedTask("stored");
    const time = timestampFromDate(new Date("2024-05-01T10:00:04.123Z"));
    await client.runner.updateLog({
      taskId: task.id,
      index: 0n,
      rows: [create(LogRowSchema, { time, content: "one" }), create(LogRowSchema, { time, content: "a\nb" })],
    });
    assert.equal(forge.logText(task.id), "2024-05-01T10:00:04.1230000Z one\n2024-05-01T10:00:04.1230000Z a\\nb\n");
  });

  test("each task records the call that assigned it and the one that ended it", async () => {
    const { client, task } = await assignedTask("journal");
    const stored = forge.tasks.get(task.id);
    assert.equal(forge.calls[stored?.assignedAtCall ?? -1]?.procedure, "/runner.v1.RunnerService/FetchTask");
    await client.runner.updateTask({ state: { id: task.id, result: Result.SUCCESS } });
    assert.equal(forge.calls[stored?.finishedAtCall ?? -1]?.procedure, "/runner.v1.RunnerService/UpdateTask");
    assert.ok((stored?.finishedAtCall ?? 0) > (stored?.assignedAtCall ?? 0));
  });
});
