import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { parseLabel } from "@solstice/forge-relay";
import {
  createForgeClient,
  createRunnerFile,
  decodeTask,
  PingService,
  RegisterError,
  Result,
  RunnerService,
  registerRunner,
  TaskPayloadError,
  TaskReporter,
  taskMasks,
  uuidFromSecret,
  validateSecret,
} from "@solstice/forgejo-runner";
import { pino } from "pino";
import { startFakeForgejo } from "./fake-forgejo.ts";
import { CLIENT_FIXTURES, SERVER_CONVERSATIONS, type WireExchange } from "./wire-fixtures.ts";

// The wire fixtures (wire-fixtures.ts, each cited to the official project it comes from) replayed
// twice: the requests against the fake server, whose answers must match; and the answers against
// our client, whose requests and reactions must match. So the fake and the client cannot share a
// misunderstanding of the protocol without the fixtures catching it.

const METHODS: Record<WireExchange["procedure"], { input: DescMessage; output: DescMessage }> = {
  "/ping.v1.PingService/Ping": PingService.method.ping,
  "/runner.v1.RunnerService/Register": RunnerService.method.register,
  "/runner.v1.RunnerService/Declare": RunnerService.method.declare,
  "/runner.v1.RunnerService/FetchTask": RunnerService.method.fetchTask,
  "/runner.v1.RunnerService/UpdateTask": RunnerService.method.updateTask,
  "/runner.v1.RunnerService/UpdateLog": RunnerService.method.updateLog,
};

type Vars = Map<string, JsonValue>;
/** The fixtures are `as const` (read-only literals); the protobuf JSON functions take plain JSON. */
const wire = (value: unknown) => value as JsonValue;

/** Replaces "$name" strings by the values captured or set up so far. */
function substitute(value: JsonValue, vars: Vars): JsonValue {
  if (typeof value === "string" && value.startsWith("$") && vars.has(value.slice(1))) {
    return vars.get(value.slice(1)) as JsonValue;
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, vars));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, vars)]));
  }
  return value;
}

/** Compares an answer with the fixture's expectation (see the matchers in wire-fixtures.ts). */
function match(expected: JsonValue, actual: JsonValue | undefined, vars: Vars, where: string): void {
  if (expected === "$any") return;
  if (typeof expected === "string" && expected.startsWith("$capture:")) {
    assert.notEqual(actual, undefined, `${where}: missing`);
    vars.set(expected.slice("$capture:".length), actual as JsonValue);
    return;
  }
  if (typeof expected === "string" && expected.startsWith("$") && vars.has(expected.slice(1))) {
    assert.deepEqual(actual, vars.get(expected.slice(1)), where);
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: not a list: ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${where}: length of ${JSON.stringify(actual)}`);
    for (const [i, item] of expected.entries()) match(item, actual[i], vars, `${where}[${i}]`);
    return;
  }
  if (expected !== null && typeof expected === "object") {
    if ("$unordered" in expected) {
      const want = (substitute(expected.$unordered as JsonValue, vars) as JsonValue[]).map((v) => JSON.stringify(v));
      assert.ok(Array.isArray(actual), `${where}: not a list`);
      assert.deepEqual(actual.map((v) => JSON.stringify(v)).sort(), want.sort(), where);
      return;
    }
    assert.ok(actual !== null && typeof actual === "object" && !Array.isArray(actual), `${where}: not an object`);
    const partial = expected.$partial === true;
    const keys = Object.keys(expected).filter((k) => k !== "$partial");
    if (!partial) {
      const extra = Object.keys(actual).filter((k) => !keys.includes(k));
      assert.deepEqual(extra, [], `${where}: fields the fixture does not have: ${JSON.stringify(actual)}`);
    }
    for (const key of keys) match(expected[key] as JsonValue, actual[key], vars, `${where}.${key}`);
    return;
  }
  assert.deepEqual(actual, expected, where);
}

describe("wire fixtures replayed against the fake server", () => {
  for (const conversation of SERVER_CONVERSATIONS) {
    test(conversation.name, async () => {
      const forge = await startFakeForgejo();
      const vars: Vars = new Map();
      try {
        const { registrationToken, workflow, offline } = conversation.setup;
        if (registrationToken) {
          forge.addRegistrationToken(registrationToken);
          vars.set("registrationToken", registrationToken);
        }
        if (workflow) forge.queueJob({ workflow });
        if (offline) {
          const uuid = forge.registerOffline(offline);
          assert.equal(uuid, offline.uuid, "the uuid forgejo-cli prints for this secret");
          vars.set("uuid", uuid);
          vars.set("token", offline.secret);
        }
        for (const [i, exchange] of conversation.exchanges.entries()) {
          const where = `exchange ${i} ${exchange.procedure}`;
          const method = METHODS[exchange.procedure];
          const request = fromJson(method.input, substitute(exchange.request, vars));
          const headers: Record<string, string> = {
            "content-type": "application/proto",
            "connect-protocol-version": "1",
          };
          if (exchange.auth !== "none") {
            headers["x-runner-uuid"] = String(vars.get("uuid"));
            headers["x-runner-token"] = exchange.auth === "runner" ? String(vars.get("token")) : "not-the-token";
          }
          const res = await fetch(`${forge.url}/api/actions${exchange.procedure}`, {
            method: "POST",
            headers,
            body: toBinary(method.input, request),
          });
          if (exchange.error) {
            assert.notEqual(res.status, 200, `${where}: an error`);
            const body = (await res.json()) as { code: string; message: string };
            assert.ok(exchange.error.codes.includes(body.code), `${where}: code ${body.code}`);
            assert.equal(body.message, exchange.error.message, where);
            continue;
          }
          assert.equal(res.status, 200, `${where}: ${res.status} ${await res.clone().text()}`);
          assert.equal(res.headers.get("content-type"), "application/proto", where);
          const answer = fromBinary(method.output, new Uint8Array(await res.arrayBuffer()));
          match(exchange.response ?? {}, toJson(method.output, answer), vars, where);
        }
        if (conversation.storedLog !== undefined) {
          assert.equal(forge.logText(BigInt(String(vars.get("taskId")))), conversation.storedLog);
        }
      } finally {
        await forge.close();
      }
    });
  }
});

/** A server that answers with the fixtures' responses, through the same generated service, and records requests. */
async function startStub(routes: (router: ConnectRouter) => void) {
  const server = http.createServer(connectNodeAdapter({ requestPathPrefix: "/api/actions", routes }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const json = <Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>) => toJson(schema, message);
const waitUntil = async (predicate: () => boolean, what: string, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe("wire fixtures replayed against our client", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "solstice-wire-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("register pings with its name, sends label names as labels and agent_labels, and keeps the answer in .runner", async () => {
    const fixture = CLIENT_FIXTURES.register;
    const pings: string[] = [];
    const registers: JsonValue[] = [];
    const stub = await startStub((router) => {
      router.service(PingService, {
        ping: (req) => {
          pings.push(req.data);
          return { data: `Hello, ${req.data}!` };
        },
      });
      router.service(RunnerService, {
        register: (req) => {
          registers.push(json(RunnerService.method.register.input, req));
          return fromJson(RunnerService.method.register.output, wire(fixture.response));
        },
      });
    });
    try {
      const file = path.join(dir, ".runner-register");
      await registerRunner({
        instance: stub.url,
        token: fixture.registrationToken,
        name: fixture.name,
        labels: fixture.labels,
        file,
      });
      assert.deepEqual(pings, [fixture.name]);
      match(wire({ ...fixture.request, version: "$any" }), registers[0], new Map(), "RegisterRequest");
      const written = JSON.parse(await readFile(file, "utf8"));
      assert.deepEqual(
        { id: written.id, uuid: written.uuid, name: written.name, token: written.token, labels: written.labels },
        fixture.runnerFile,
      );
      assert.equal(written.address, stub.url);
    } finally {
      await stub.close();
    }
  });

  /** A TaskReporter against a stub whose UpdateLog and UpdateTask answers the test chooses. */
  async function reporterAgainst(answers: {
    updateLog?: (index: bigint, rows: number, call: number) => bigint;
    updateTask?: (outputs: Record<string, string>, call: number) => unknown;
  }) {
    const logRequests: { index: bigint; rows: string[] }[] = [];
    const taskRequests: Record<string, string>[] = [];
    const warnings: string[] = [];
    const remoteEnds: Result[] = [];
    const stub = await startStub((router) =>
      router.service(RunnerService, {
        updateLog: (req) => {
          logRequests.push({ index: req.index, rows: req.rows.map((r) => r.content) });
          const ack =
            answers.updateLog?.(req.index, req.rows.length, logRequests.length) ?? req.index + BigInt(req.rows.length);
          return { ackIndex: ack };
        },
        updateTask: (req) => {
          taskRequests.push({ ...req.outputs });
          const answer = wire(answers.updateTask?.(req.outputs, taskRequests.length) ?? {});
          return fromJson(RunnerService.method.updateTask.output, answer);
        },
      }),
    );
    const reporter = new TaskReporter({
      client: createForgeClient({ address: stub.url, credentials: { uuid: "u", token: "t" } }),
      taskId: 1n,
      stepCount: 1,
      masks: [],
      log: pino({ level: "warn" }, { write: (line: string) => warnings.push(JSON.parse(line).err ?? "") }),
      reportIntervalMs: 50,
      maxBackoffMs: 200,
      onRemoteEnd: (result) => remoteEnds.push(result),
    });
    return { reporter, stub, logRequests, taskRequests, warnings, remoteEnds };
  }

  for (const [name, answer, result] of [
    ["cancelled", CLIENT_FIXTURES.reporter.cancelled, Result.CANCELLED],
    ["failed", CLIENT_FIXTURES.reporter.failed, Result.FAILURE],
  ] as const) {
    test(`an UpdateTask answered with the task ${name} ends the job once`, async () => {
      const r = await reporterAgainst({ updateTask: () => answer });
      try {
        await waitUntil(() => r.taskRequests.length >= 3, "three state reports");
        assert.deepEqual(r.remoteEnds, [result], "told once, however many reports see it");
        await r.reporter.finish(Result.CANCELLED, {});
      } finally {
        await r.stub.close();
      }
    });
  }

  test("outputs the forge did not list in sent_outputs are sent again, alone", async () => {
    const { outputs, partialOutputs } = CLIENT_FIXTURES.reporter;
    let acked: string[] = [];
    const r = await reporterAgainst({
      updateTask: (sent) => {
        if (Object.keys(sent).length === 0) return { sentOutputs: acked };
        acked = acked.length === 0 ? [...partialOutputs.sentOutputs] : [...acked, ...Object.keys(sent)];
        return { sentOutputs: acked };
      },
    });
    try {
      await r.reporter.finish(Result.SUCCESS, { ...outputs });
      const withOutputs = r.taskRequests.filter((o) => Object.keys(o).length > 0);
      assert.deepEqual(withOutputs, [{ ...outputs }, { KEY2: "VALUE2" }]);
    } finally {
      await r.stub.close();
    }
  });

  test("rows the forge acknowledged only in part are resent from its ack index, and none is lost", async () => {
    const [a, b, c] = CLIENT_FIXTURES.reporter.rows;
    const r = await reporterAgainst({
      updateLog: (index, rows, call) => (call === 1 ? index + 1n : index + BigInt(rows)),
    });
    try {
      for (const row of [a, b, c]) r.reporter.addLine(0, new Date(), row);
      await r.reporter.finish(Result.SUCCESS, {});
      assert.deepEqual(r.logRequests[0], { index: 0n, rows: [a, b, c] });
      assert.deepEqual(r.logRequests[1], { index: 1n, rows: [b, c] });
    } finally {
      await r.stub.close();
    }
  });

  test("an ack below what the forge had acknowledged is reported as lost logs, and the rows are kept", async () => {
    const { offset, ackIndex } = CLIENT_FIXTURES.reporter.lostAck;
    let honest = false;
    const r = await reporterAgainst({
      updateLog: (index, rows) => (index === 0n || honest ? index + BigInt(rows) : BigInt(ackIndex)),
    });
    try {
      for (let i = 0; i < offset; i++) r.reporter.addLine(0, new Date(), `row ${i}`);
      await waitUntil(() => r.logRequests.length >= 1, "the first 100 rows");
      r.reporter.addLine(0, new Date(), "late");
      await waitUntil(() => r.warnings.some((w) => w.includes("submitted logs are lost")), "the lost-logs warning");
      honest = true;
      await r.reporter.finish(Result.SUCCESS, {});
      const late = r.logRequests.filter((q) => q.index === BigInt(offset));
      assert.ok(late.length >= 2, "the row after the bad ack was sent again");
      assert.ok(late.every((q) => q.rows[0] === "late"));
    } finally {
      await r.stub.close();
    }
  });

  for (const fixture of CLIENT_FIXTURES.tasks.cases) {
    test(`FetchTask answer: ${fixture.name}`, async () => {
      const stub = await startStub((router) =>
        router.service(RunnerService, {
          fetchTask: () => fromJson(RunnerService.method.fetchTask.output, wire(fixture.response)),
        }),
      );
      try {
        const client = createForgeClient({ address: stub.url, credentials: { uuid: "u", token: "t" } });
        const { task } = await client.runner.fetchTask({ tasksVersion: 0n });
        assert.ok(task, "the answer carries a task");
        const labels = fixture.labels.map(parseLabel);
        const { expect } = fixture;
        for (const mask of "masks" in expect ? expect.masks : []) assert.ok(taskMasks(task).includes(mask));
        if ("planned" in expect) {
          const decoded = decodeTask(task, labels);
          assert.equal(decoded.job.key, expect.planned.job);
          assert.equal(decoded.label.fleetLabel, expect.planned.fleetLabel);
          assert.equal(decoded.job.steps.length, expect.planned.steps);
          return;
        }
        assert.throws(
          () => decodeTask(task, labels),
          (error: unknown) => {
            assert.ok(error instanceof TaskPayloadError, String(error));
            assert.match(error.message, new RegExp(expect.refused.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
            return true;
          },
        );
      } finally {
        await stub.close();
      }
    });
  }

  test("create-runner-file derives the uuid from the secret as Forgejo does and refuses bad secrets", () => {
    const { uuids, invalid } = CLIENT_FIXTURES.createRunnerFile;
    for (const [secret, uuid] of uuids) assert.equal(uuidFromSecret(secret), uuid);
    for (const [secret, message] of invalid) {
      assert.throws(
        () => validateSecret(secret),
        (error: unknown) =>
          error instanceof RegisterError && error.code === "invalid_secret" && error.message.includes(message),
      );
    }
  });

  test("create-runner-file against the fake: the forge knows the runner from forgejo-cli, and --connect proves it", async () => {
    const forge = await startFakeForgejo();
    try {
      const secret = CLIENT_FIXTURES.createRunnerFile.uuids[2][0];
      const file = path.join(dir, ".runner-offline");
      await assert.rejects(
        createRunnerFile({ instance: forge.url, secret, name: "offline", labels: ["tiny"], file, connect: true }),
        (error: unknown) => error instanceof RegisterError && error.code === "registration_refused",
        "a secret the server was never given is refused",
      );
      forge.registerOffline({ secret });
      const { runner, verified } = await createRunnerFile({
        instance: `${forge.url}/`,
        secret,
        name: "offline",
        labels: ["solstice-tiny:vm:tiny"],
        file,
        connect: true,
      });
      assert.equal(verified, true);
      assert.equal(runner.uuid, "30313233-3435-3637-3839-303132333435");
      const written = JSON.parse(await readFile(file, "utf8"));
      assert.deepEqual(
        { id: written.id, uuid: written.uuid, token: written.token, address: written.address, labels: written.labels },
        { id: 0, uuid: runner.uuid, token: secret, address: forge.url, labels: ["solstice-tiny:vm:tiny"] },
      );
      assert.deepEqual(forge.runners.get(runner.uuid)?.labels, ["solstice-tiny"], "Declare set the label names");
      assert.ok(
        forge.calls.some((c) => c.procedure === "/ping.v1.PingService/Ping" && c.runner === ""),
        "pinged without credentials first",
      );
      const client = createForgeClient({ address: forge.url, credentials: runner });
      assert.equal((await client.runner.fetchTask({})).task, undefined, "FetchTask with the file's credentials works");
    } finally {
      await forge.close();
    }
  });

  test("a forge that answers unimplemented to an unknown method is told apart from refused credentials", async () => {
    const stub = await startStub((router) => router.service(PingService, { ping: (req) => ({ data: req.data }) }));
    try {
      const client = createForgeClient({ address: stub.url, credentials: { uuid: "u", token: "t" } });
      await assert.rejects(
        client.runner.declare({}),
        (error: unknown) => ConnectError.from(error).code === Code.Unimplemented,
      );
      const { verified } = await createRunnerFile({
        instance: stub.url,
        secret: CLIENT_FIXTURES.createRunnerFile.uuids[0][0],
        name: "old",
        labels: ["tiny"],
        file: path.join(dir, ".runner-old"),
        connect: true,
      });
      assert.equal(verified, false, "an old forge cannot confirm, and that is not an error");
    } finally {
      await stub.close();
    }
  });
});
