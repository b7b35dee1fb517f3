import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  PingService,
  Result,
  RunnerSchema,
  RunnerService,
  type StepState,
  type Task,
  TaskSchema,
} from "@solstice/forgejo-runner";
import { parse as parseYaml } from "yaml";
import { createResultsService, type ResultsService } from "../results/results-service.ts";
import { issueRuntimeToken, verifyRuntimeToken } from "../results/runtime-token.ts";

// A Forgejo server as a runner sees it, built from ../../../../shared/protocols/forgejo-runner.md
// (sections 1-4, 6, 7, 10, 11 and 13). Every rule below names the section it comes from.

/** Final results: once a task has one, UpdateTask changes nothing (section 10). */
const FINAL = new Set([Result.SUCCESS, Result.FAILURE, Result.CANCELLED, Result.SKIPPED]);
const MAX_OUTPUT_KEY_BYTES = 255;
const MAX_OUTPUT_VALUE_BYTES = 1024 * 1024;

export interface FakeRunnerRecord {
  id: bigint;
  uuid: string;
  token: string;
  name: string;
  version: string;
  labels: string[];
  lastOnline: Date;
}

export interface FakeLogLine {
  time: Date;
  content: string;
}

export interface FakeStep {
  index: number;
  name: string;
  result: Result;
  /** "waiting" until the runner says the step started, as the server's step status does. */
  status: "waiting" | "running" | "done";
  logIndex: bigint;
  logLength: bigint;
  startedAt?: Date;
  stoppedAt?: Date;
}

export interface FakeTask {
  id: bigint;
  jobId: number;
  runnerId: bigint;
  token: string;
  result: Result;
  startedAt?: Date;
  stoppedAt?: Date;
  steps: FakeStep[];
  log: FakeLogLine[];
  /** Set once an UpdateLog with no_more was accepted: the log moved to storage (section 11). */
  logArchived: boolean;
  outputs: Map<string, string>;
  /** UpdateTask/UpdateLog calls seen for this task. */
  updates: number;
  /** Index in `calls` of the FetchTask that assigned it. */
  assignedAtCall: number;
  /** Index in `calls` of the call that gave it its final result (an UpdateTask, or a cancel between calls). */
  finishedAtCall?: number;
}

export interface QueueJobOptions {
  /** A single-job workflow, as the server's jobparser hands it to runners (section 6). */
  workflow: string;
  secrets?: Record<string, string>;
  vars?: Record<string, string>;
  /** The workflow run this job belongs to (default: a run of its own): jobs of one run share its artifacts. */
  runId?: number;
  /** The jobs it needs, as the server sends them once they finished (section 6: Task.needs). */
  needs?: Record<string, { outputs?: Record<string, string>; result: Result }>;
}

interface WaitingJob {
  id: number;
  key: string;
  runsOn: string[];
  payload: string;
  stepNames: string[];
  secrets: Record<string, string>;
  vars: Record<string, string>;
  runId: number;
  needs: NonNullable<QueueJobOptions["needs"]>;
  taskId?: bigint;
}

/** How the forge is away: connections reset, refused (nothing listens), or requests never answered. */
export type OutageMode = "reset" | "refuse" | "hang";

export interface FakeCall {
  procedure: string;
  contentType: string;
  /** The x-runner-uuid header, empty when absent. */
  runner: string;
  at: Date;
}

export interface FakeForgejo {
  /** The instance URL an admin gives the runner (the RPCs are under <url>/api/actions). */
  readonly url: string;
  readonly runners: ReadonlyMap<string, FakeRunnerRecord>;
  readonly tasks: ReadonlyMap<bigint, FakeTask>;
  /** Current scope-wide tasks version (section 7). */
  readonly tasksVersion: bigint;
  /** Requests that reached the server, in order (none while it is away). */
  readonly calls: FakeCall[];
  addRegistrationToken(token: string): void;
  /**
   * `forgejo forgejo-cli actions register --secret S [--name --labels --version]` (section 5): the
   * runner exists before it ever calls, with the uuid made from the secret and the secret as
   * token; run again, it updates that runner. Returns the uuid, as the command prints it.
   */
  registerOffline(opts: { secret: string; name?: string; labels?: string[]; version?: string }): string;
  /** Revokes a token: a later Register with it fails with invalid_argument. */
  revokeRegistrationToken(token: string): void;
  /** Queues a job; resolves to its id. Throws when the payload has not exactly one job. */
  queueJob(opts: QueueJobOptions): number;
  /** The task a job was assigned to, once a runner fetched it. */
  taskOfJob(jobId: number): FakeTask | undefined;
  /** A user cancels the task: the next UpdateTask answers RESULT_CANCELLED (section 10). */
  cancel(taskId: bigint): void;
  /** The zombie reaper times the task out: the next UpdateTask answers RESULT_FAILURE. */
  failTask(taskId: bigint): void;
  deleteRunner(uuid: string): void;
  /** The stored log as the server writes it to storage: `<time> <content>` per line (section 11). */
  logText(taskId: bigint): string;
  /** The forge goes away until comeBack(): connections reset (default), refused, or left hanging. */
  goAway(mode?: OutageMode): void;
  comeBack(): Promise<void>;
  /** Resolves once `predicate` holds, polling every 50 ms; rejects after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void>;
  /** Artifacts v4 at <url>/twirp/…ArtifactService (../results/results-service.ts). */
  readonly results: ResultsService;
  close(): Promise<void>;
}

/**
 * Starts the fake on `host` (default 127.0.0.1; the compose system test gives an address its
 * containers reach) and a free port.
 */
export async function startFakeForgejo(
  opts: {
    host?: string;
    /** The host its URLs name (a relay's, for guests that cannot reach `host`). Default `host`. */
    publicHost?: string;
    /** The instance's default actions URL, sent with every task (`[actions] DEFAULT_ACTIONS_URL`). Default https://data.forgejo.org. */
    defaultActionsUrl?: string;
  } = {},
): Promise<FakeForgejo> {
  const host = opts.host ?? "127.0.0.1";
  const defaultActionsUrl = opts.defaultActionsUrl ?? "https://data.forgejo.org";
  // The instance's token signing secret: it signs the runtime tokens (Forgejo's services/actions/auth.go).
  const signingSecret = randomBytes(32);
  const registrationTokens = new Map<string, { revoked: boolean }>();
  const runners = new Map<string, FakeRunnerRecord>();
  const tasks = new Map<bigint, FakeTask>();
  const jobs: WaitingJob[] = [];
  const requestKeys = new Map<string, bigint[]>();
  const calls: FakeCall[] = [];
  let tasksVersion = 1n;
  let nextRunnerId = 1n;
  let nextTaskId = 100n;
  let nextJobId = 1;
  let away: OutageMode | undefined;
  const held = new Set<http.ServerResponse>();
  let url = "";

  const authenticate = (ctx: HandlerContext): FakeRunnerRecord => {
    const uuid = ctx.requestHeader.get("x-runner-uuid") ?? "";
    const token = ctx.requestHeader.get("x-runner-token") ?? "";
    const runner = runners.get(uuid);
    // Section 4 / 13.4: missing, unknown or wrong credentials are all "unregistered runner".
    if (!runner || runner.token !== token) throw new ConnectError("unregistered runner", Code.Unauthenticated);
    runner.lastOnline = new Date();
    return runner;
  };
  // Section 5: only Register hands the token out; the server keeps a hash, so Declare has none to return.
  const runnerMessage = (r: FakeRunnerRecord, withToken: boolean) =>
    create(RunnerSchema, {
      id: r.id,
      uuid: r.uuid,
      token: withToken ? r.token : "",
      name: r.name,
      version: r.version,
      labels: r.labels,
    });
  const ownTask = (runner: FakeRunnerRecord, taskId: bigint): FakeTask => {
    const task = tasks.get(taskId);
    if (!task || task.runnerId !== runner.id) throw new ConnectError("invalid runner for task", Code.Internal);
    return task;
  };

  const assign = (runner: FakeRunnerRecord): FakeTask | undefined => {
    const job = jobs.find(
      (j) => j.taskId === undefined && j.runsOn.length > 0 && j.runsOn.every((label) => runner.labels.includes(label)),
    );
    if (!job) return undefined;
    const task: FakeTask = {
      id: nextTaskId++,
      jobId: job.id,
      runnerId: runner.id,
      token: randomBytes(20).toString("hex"),
      result: Result.UNSPECIFIED,
      steps: job.stepNames.map((name, index) => ({
        index,
        name,
        result: Result.UNSPECIFIED,
        status: "waiting",
        logIndex: 0n,
        logLength: 0n,
      })),
      log: [],
      logArchived: false,
      outputs: new Map(),
      updates: 0,
      assignedAtCall: calls.length - 1,
    };
    job.taskId = task.id;
    tasks.set(task.id, task);
    return task;
  };

  const taskMessage = (task: FakeTask): Task => {
    const job = jobs.find((j) => j.id === task.jobId);
    if (!job) throw new ConnectError(`job ${task.jobId} vanished`, Code.Internal);
    // Section 6: the context keys a runner relies on, and the three token secrets.
    const context: JsonObject = {
      action: "",
      actor: "alice",
      api_url: `${url}/api/v1`,
      base_ref: "",
      event: { ref: "refs/heads/main", repository: { full_name: "alice/demo" } },
      event_name: "push",
      head_ref: "",
      job: job.key,
      ref: "refs/heads/main",
      ref_name: "main",
      ref_protected: false,
      ref_type: "branch",
      repository: "alice/demo",
      repository_owner: "alice",
      repositoryUrl: `${url}/alice/demo`,
      run_id: String(job.id),
      run_number: String(job.id),
      run_attempt: "1",
      secret_source: "Actions",
      server_url: `${url}/`,
      sha: "0123456789abcdef0123456789abcdef01234567",
      token: task.token,
      triggering_actor: "alice",
      workflow: "ci.yml",
      workflow_ref: "alice/demo/.forgejo/workflows/ci.yml@refs/heads/main",
      forgejo_default_actions_url: defaultActionsUrl,
      gitea_default_actions_url: defaultActionsUrl,
      forgejo_runtime_token: issueRuntimeToken(
        {
          scp: `Actions.Results:${job.runId}:${job.id}`,
          TaskID: Number(task.id),
          RunID: job.runId,
          JobID: job.id,
          exp: Math.floor(Date.now() / 1000) + 3600,
        },
        signingSecret,
      ),
    };
    context.run_id = String(job.runId);
    return create(TaskSchema, {
      id: task.id,
      workflowPayload: new TextEncoder().encode(job.payload),
      context,
      needs: Object.fromEntries(
        Object.entries(job.needs).map(([id, need]) => [id, { outputs: need.outputs ?? {}, result: need.result }]),
      ),
      secrets: { ...job.secrets, GITHUB_TOKEN: task.token, GITEA_TOKEN: task.token, FORGEJO_TOKEN: task.token },
      vars: job.vars,
    });
  };

  const date = (t: Timestamp | undefined) => (t ? timestampDate(t) : undefined);
  const applyStep = (task: FakeTask, state: StepState) => {
    const step = task.steps[Number(state.id)];
    if (!step) return;
    step.logIndex = state.logIndex;
    step.logLength = state.logLength;
    step.startedAt = date(state.startedAt) ?? step.startedAt;
    step.stoppedAt = date(state.stoppedAt) ?? step.stoppedAt;
    if (state.result !== Result.UNSPECIFIED) {
      step.result = state.result;
      step.status = "done";
    } else if (state.startedAt) step.status = "running";
  };
  const finish = (task: FakeTask, result: Result, stoppedAt: Date) => {
    task.result = result;
    task.stoppedAt = stoppedAt;
    task.finishedAtCall = calls.length - 1;
    tasksVersion++;
  };

  const handler = connectNodeAdapter({
    requestPathPrefix: "/api/actions",
    routes(router) {
      router.service(PingService, {
        ping: (req) => ({ data: `Hello, ${req.data}!` }),
      });
      router.service(RunnerService, {
        register(req) {
          if (req.name === "" || req.token === "") {
            throw new ConnectError("missing runner token, name", Code.InvalidArgument);
          }
          const registration = registrationTokens.get(req.token);
          if (!registration) throw new ConnectError("runner registration token not found", Code.InvalidArgument);
          if (registration.revoked)
            throw new ConnectError("runner registration token has been invalidated", Code.InvalidArgument);
          const runner: FakeRunnerRecord = {
            id: nextRunnerId++,
            uuid: randomUUID(),
            token: randomBytes(20).toString("hex"),
            name: Buffer.from(req.name).subarray(0, 255).toString(),
            version: req.version,
            labels: [...req.labels],
            lastOnline: new Date(),
          };
          runners.set(runner.uuid, runner);
          return { runner: runnerMessage(runner, true) };
        },
        declare(req, ctx) {
          const runner = authenticate(ctx);
          runner.labels = [...req.labels];
          runner.version = req.version;
          return { runner: runnerMessage(runner, false) };
        },
        fetchTask(req, ctx) {
          const runner = authenticate(ctx);
          const key = ctx.requestHeader.get("x-runner-request-key");
          const keyed = key ? requestKeys.get(`${runner.id}/${key}`) : undefined;
          if (keyed?.[0] !== undefined) {
            // Section 7: a retried request key gets its tasks again, with tasks_version 0.
            const task = tasks.get(keyed[0]);
            if (task) {
              task.token = randomBytes(20).toString("hex");
              return { task: taskMessage(task), tasksVersion: 0n };
            }
          }
          if (req.tasksVersion === tasksVersion) return { tasksVersion };
          const task = assign(runner);
          if (!task) return { tasksVersion };
          if (key) requestKeys.set(`${runner.id}/${key}`, [task.id]);
          return { task: taskMessage(task), tasksVersion };
        },
        updateTask(req, ctx) {
          const runner = authenticate(ctx);
          const state = req.state;
          if (!state) throw new ConnectError("state is required", Code.InvalidArgument);
          const task = ownTask(runner, state.id);
          task.updates++;
          if (!FINAL.has(task.result)) {
            for (const [name, value] of Object.entries(req.outputs)) {
              if (Buffer.byteLength(name) > MAX_OUTPUT_KEY_BYTES || Buffer.byteLength(value) > MAX_OUTPUT_VALUE_BYTES)
                continue;
              if (!task.outputs.has(name)) task.outputs.set(name, value);
            }
            task.startedAt ??= date(state.startedAt);
            for (const step of state.steps) applyStep(task, step);
            if (state.result !== Result.UNSPECIFIED) finish(task, state.result, date(state.stoppedAt) ?? new Date(0));
          }
          return {
            state: { id: state.id, result: FINAL.has(task.result) ? task.result : Result.UNSPECIFIED },
            sentOutputs: [...task.outputs.keys()],
          };
        },
        updateLog(req, ctx) {
          const runner = authenticate(ctx);
          const task = ownTask(runner, req.taskId);
          task.updates++;
          // Section 11, the server's algorithm: gaps and pure duplicates store nothing.
          const ack = BigInt(task.log.length);
          if (req.rows.length === 0 || req.index > ack || req.index + BigInt(req.rows.length) <= ack) {
            return { ackIndex: ack };
          }
          if (task.logArchived) throw new ConnectError("log file has been archived", Code.AlreadyExists);
          for (const row of req.rows.slice(Number(ack - req.index))) {
            task.log.push({ time: date(row.time) ?? new Date(0), content: row.content });
          }
          if (req.noMore) task.logArchived = true;
          return { ackIndex: BigInt(task.log.length) };
        },
      });
    },
    fallback(_req, res) {
      res.writeHead(404);
      res.end();
    },
  });

  // Artifacts v4: the runtime token must be one this instance signed, for a task still running.
  const results = createResultsService({
    flavor: "forgejo",
    baseUrl: () => url,
    authorize(token) {
      const claims = verifyRuntimeToken(token, signingSecret);
      const task = claims ? tasks.get(BigInt(Number(claims.TaskID))) : undefined;
      if (!claims || !task || FINAL.has(task.result)) return undefined;
      return { runId: String(claims.RunID), jobId: String(claims.JobID), repository: "alice/demo" };
    },
  });

  const server = http.createServer((req, res) => {
    if (away === "hang") {
      held.add(res);
      return;
    }
    if (away) {
      req.socket.destroy();
      return;
    }
    if (results.handle(req, res)) return;
    const procedure = (req.url ?? "").replace(/^\/api\/actions/, "");
    const runner = req.headers["x-runner-uuid"];
    calls.push({
      procedure,
      contentType: req.headers["content-type"] ?? "",
      runner: typeof runner === "string" ? runner : "",
      at: new Date(),
    });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  url = `http://${opts.publicHost ?? host}:${port}`;
  const closeListener = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });

  return {
    url,
    results,
    runners,
    tasks,
    get tasksVersion() {
      return tasksVersion;
    },
    calls,
    addRegistrationToken(token) {
      registrationTokens.set(token, { revoked: false });
    },
    revokeRegistrationToken(token) {
      const entry = registrationTokens.get(token);
      if (entry) entry.revoked = true;
    },
    queueJob(opts) {
      const doc = parseYaml(opts.workflow) as { jobs?: Record<string, { "runs-on"?: unknown; steps?: unknown[] }> };
      const entries = Object.entries(doc.jobs ?? {});
      if (entries.length !== 1) throw new Error(`a task payload has exactly one job; found ${entries.length}`);
      const [key, job] = entries[0] as [
        string,
        { "runs-on"?: unknown; steps?: { name?: string; run?: string; uses?: string }[] },
      ];
      const runsOn = Array.isArray(job["runs-on"]) ? job["runs-on"].map(String) : [String(job["runs-on"] ?? "")];
      const stepNames = (job.steps ?? []).map((s, i) => s.name ?? s.run ?? s.uses ?? `step ${i}`);
      const id = nextJobId++;
      jobs.push({
        id,
        key,
        runsOn,
        payload: opts.workflow,
        stepNames,
        secrets: opts.secrets ?? {},
        vars: opts.vars ?? {},
        runId: opts.runId ?? id,
        needs: opts.needs ?? {},
      });
      tasksVersion++;
      return id;
    },
    taskOfJob(jobId) {
      const taskId = jobs.find((j) => j.id === jobId)?.taskId;
      return taskId === undefined ? undefined : tasks.get(taskId);
    },
    cancel(taskId) {
      const task = tasks.get(taskId);
      if (task && !FINAL.has(task.result)) finish(task, Result.CANCELLED, new Date());
    },
    failTask(taskId) {
      const task = tasks.get(taskId);
      if (task && !FINAL.has(task.result)) finish(task, Result.FAILURE, new Date());
    },
    registerOffline({ secret, name, labels, version }) {
      if (!/^[0-9a-fA-F]{40}$/.test(secret)) throw new Error("the secret must be 40 hexadecimal characters");
      const hex = Buffer.from(secret.slice(0, 16), "latin1").toString("hex");
      const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
      const existing = runners.get(uuid);
      const runner: FakeRunnerRecord = existing ?? {
        id: nextRunnerId++,
        uuid,
        token: secret,
        name: name ?? "",
        version: version ?? "",
        labels: labels ?? [],
        lastOnline: new Date(0),
      };
      if (name !== undefined) runner.name = name;
      if (labels !== undefined) runner.labels = [...labels];
      if (version !== undefined) runner.version = version;
      runner.token = secret;
      runners.set(uuid, runner);
      return uuid;
    },
    deleteRunner(uuid) {
      runners.delete(uuid);
    },
    logText(taskId) {
      const task = tasks.get(taskId);
      if (!task) throw new Error(`no task ${taskId}`);
      return task.log.map((line) => `${storageTime(line.time)} ${line.content.replaceAll("\n", "\\n")}\n`).join("");
    },
    goAway(mode = "reset") {
      away = mode;
      // Refused: nothing listens on the port until the forge is back.
      if (mode === "refuse") void closeListener();
    },
    async comeBack() {
      const was = away;
      away = undefined;
      for (const res of held) res.socket?.destroy();
      held.clear();
      if (was === "refuse") await new Promise<void>((resolve) => server.listen(port, host, resolve));
    },
    async waitFor(predicate, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`fake Forgejo: ${what} did not happen within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      for (const res of held) res.socket?.destroy();
      held.clear();
      if (server.listening) await closeListener();
    },
  };
}

/** Go's `2006-01-02T15:04:05.0000000Z07:00` in UTC, the time format of the server's stored log lines. */
function storageTime(time: Date): string {
  return time.toISOString().replace(/\.(\d{3})Z$/, (_, millis: string) => `.${millis}0000Z`);
}
