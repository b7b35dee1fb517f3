import {
  constants,
  createCipheriv,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  publicEncrypt,
  randomBytes,
  randomUUID,
} from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { createResultsService, type ResultsService } from "../results/results-service.ts";
import { issueRuntimeToken, verifyRuntimeToken } from "../results/runtime-token.ts";
import { FakeActionRepositories, type ResolvedAction } from "./fake-actions.ts";
import { buildJobMessage, type FakeJobSpec } from "./fake-job.ts";
import { AssertionError, verifyAssertion } from "./jwt-verify.ts";
import { array, enumName, field, integer, type Json, RECORD_STATES, TASK_RESULTS, text } from "./wire.ts";

// GitHub's runner-facing services as a runner sees them, built from
// ../../../../shared/protocols/github-runner.md. Every rule names the section it comes from.

/** §1.4: the canonical location ids and route templates (Azure DevOps' generated clients). */
const ROUTES = [
  {
    id: "a8c47e17-4d56-4a56-92bb-de7ea7dc65be",
    area: "distributedtask",
    name: "pools",
    path: "_apis/distributedtask/pools/{poolId}",
  },
  {
    id: "e298ef32-5878-4cab-993c-043836571f42",
    area: "distributedtask",
    name: "agents",
    path: "_apis/distributedtask/pools/{poolId}/agents/{agentId}",
  },
  {
    id: "134e239e-2df3-4794-a6f6-24f1f19ec8dc",
    area: "distributedtask",
    name: "sessions",
    path: "_apis/distributedtask/pools/{poolId}/sessions/{sessionId}",
  },
  {
    id: "c3a054f6-7a8a-49c0-944e-3a8e5d7adfd7",
    area: "distributedtask",
    name: "messages",
    path: "_apis/distributedtask/pools/{poolId}/messages/{messageId}",
  },
  {
    id: "fc825784-c92a-4299-9221-998a02d1b54f",
    area: "distributedtask",
    name: "jobrequests",
    path: "_apis/distributedtask/pools/{poolId}/jobrequests/{requestId}",
  },
  {
    id: "8893bc5b-35b2-4be7-83cb-99e683551db4",
    area: "distributedtask",
    name: "records",
    path: "{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/timelines/{timelineId}/records",
  },
  {
    id: "858983e4-19bd-4c5e-864c-507b59b58b12",
    area: "distributedtask",
    name: "feed",
    path: "{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/timelines/{timelineId}/records/{recordId}/feed",
  },
  {
    id: "46f5667d-263a-4684-91b1-dff7fdcf64e2",
    area: "distributedtask",
    name: "logs",
    path: "{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/logs/{logId}",
  },
  {
    id: "557624af-b29e-4c20-8ab0-0399d2204f3f",
    area: "distributedtask",
    name: "events",
    path: "{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/events",
  },
  {
    // The route is the server's to choose (the runner reads it from connectionData); this one
    // follows the plan API's other resources.
    id: "27d7f831-88c1-4719-8ca1-6a061dad90eb",
    area: "distributedtask",
    name: "actiondownloadinfo",
    path: "{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/actiondownloadinfo",
  },
  {
    id: "83597576-cc2c-453c-bea6-2882ae6a1653",
    area: "distributedtask",
    name: "timelines",
    path: "{scopeIdentifier}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/timelines/{timelineId}",
  },
] as const;
type RouteName = (typeof ROUTES)[number]["name"];

const ROUTE_MATCHERS = ROUTES.map((route) => {
  const names: string[] = [];
  // A placeholder may be left out together with the "/" before it (§1.4).
  const pattern = route.path.replace(/\/?\{([^}]+)\}/g, (whole, name: string) => {
    names.push(name);
    return whole.startsWith("/") ? "(?:/([^/]+))?" : "([^/]+)";
  });
  return { route, names, regex: new RegExp(`^${pattern}$`) };
});

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Json,
    readonly headers: Record<string, string> = {},
  ) {
    super(`${status} ${JSON.stringify(body)}`);
  }
}

/** §4.1: pipelines-service errors are WrappedExceptions keyed on typeKey. */
const wrapped = (status: number, typeKey: string, message: string) =>
  new HttpError(status, {
    $id: "1",
    innerException: null,
    message,
    typeName: `GitHub.DistributedTask.WebApi.${typeKey}, GitHub.DistributedTask.WebApi`,
    typeKey,
    errorCode: 0,
    eventId: 3000,
  });
/** §5.1 / §5.2: the broker's and the run service's error bodies. */
const brokerError = (status: number, errorKind: string, errorMessage: string) =>
  new HttpError(status, { source: "actions-broker-listener", errorKind, statusCode: status, errorMessage });
const runServiceError = (status: number, errorMessage: string) =>
  new HttpError(status, { source: "actions-run-service", statusCode: status, errorMessage });
const notFound = () => new HttpError(404, { message: "Not Found", documentation_url: "https://docs.github.com/rest" });

export interface FakeRunner {
  id: number;
  name: string;
  poolId: number;
  labels: { name: string; type: string }[];
  clientId: string;
  publicKey: KeyObject;
  ephemeral: boolean;
  version: string;
  /** Registered through the runner-admin flow (§1.5) or JIT with a broker: messages come from the broker. */
  useV2Flow: boolean;
  scopeUrl: string;
  deleted: boolean;
  session?: { id: string; aesKey?: Buffer; broker: boolean };
  /** The status of the runner's last poll (§4.1): jobs go only to an Online runner. */
  status?: string;
  queue: FakeMessage[];
}

export interface FakeMessage {
  messageId: number;
  messageType: string;
  body: string;
}

export interface FakeRecord {
  id: string;
  name?: string;
  order?: number;
  state?: string;
  result?: string;
  startTime?: string;
  finishTime?: string;
  logId?: number;
  /** Every state the runner reported for the record, in order. */
  history: string[];
}

export interface FakeJob {
  jobId: string;
  planId: string;
  timelineId: string;
  requestId: number;
  runnerRequestId: string;
  runnerId: number;
  flow: "broker" | "classic";
  jobToken: string;
  /** The job's step record ids, in step order. */
  stepIds: string[];
  message: Json;
  state: "queued" | "acquired" | "completed" | "abandoned";
  lockedUntil: number;
  renewals: number;
  cancelled: boolean;
  /** Timeline records by id (classic PATCH records, or Results WorkflowStepsUpdate). */
  records: Map<string, FakeRecord>;
  /** Live lines by record id, by their 1-based line number. */
  live: Map<string, Map<number, string>>;
  /** Uploaded logs: by record id, and the job's own. */
  logs: Map<string, string>;
  jobLog?: string;
  /** Calls the runner made to resolve the job's actions (Launch or the plan API). */
  actionResolves: number;
  completion?: { conclusion: string; outputs: Record<string, string>; stepResults: unknown[]; raw: unknown };
}

export interface FakeGitHubOptions {
  /** How long a message poll is held before 204 (§4.1). Default 50000. */
  pollHoldMs?: number;
  /** Lifetime of runner access tokens (§2). Default 3600 s. */
  tokenLifetimeS?: number;
  /** A job's lock after acquire or renew; an unrenewed job is abandoned (§5.3). Default 10 min. */
  lockMs?: number;
  /** Sessions carry an encryption key and messages are encrypted (§4.1). Default false. */
  encryptMessages?: boolean;
  /** The address to listen on. Default 127.0.0.1. */
  host?: string;
  /** The host its URLs name (a relay's, for guests that cannot reach `host`). Default `host`. */
  publicHost?: string;
}

interface RegistrationToken {
  scopeUrl: string;
  expiresAt: number;
  useV2Flow: boolean;
  kind: "registration" | "remove";
}

interface Fault {
  path: RegExp;
  status: number;
  times: number;
  headers?: Record<string, string>;
  body?: Json;
}

export interface FakeGitHub {
  readonly url: string;
  readonly runners: ReadonlyMap<number, FakeRunner>;
  readonly jobs: ReadonlyMap<string, FakeJob>;
  /** Every request: method, path (no query), the status answered, the auth scheme and when it was answered. */
  readonly calls: { method: string; path: string; status: number; auth: string; at: number }[];
  /** A registration token for a repository/organization URL (§1.3), valid an hour; runner-admin flow if useV2Flow. */
  addRegistrationToken(scopeUrl: string, opts?: { useV2Flow?: boolean; expiresInMs?: number }): string;
  addRemoveToken(scopeUrl: string, opts?: { useV2Flow?: boolean }): string;
  /** A personal access token accepted by the REST endpoints that take one (§1.2, §1.7). */
  addPat(pat: string): void;
  runnerByName(name: string): FakeRunner | undefined;
  /** Queues a job for a runner: a PipelineAgentJobRequest (classic) or a RunnerJobRequest (broker). */
  queueJob(runnerId: number, spec: FakeJobSpec): FakeJob;
  /** Queues a job message as given (a replayed fixture), with the fake's ids and URLs put in. */
  queueRawJob(runnerId: number, message: Json): FakeJob;
  /** §8: the user cancels the job: a JobCancellation on the runner's channel. */
  cancelJob(jobId: string): void;
  /** Puts any message on a runner's channel (BrokerMigration, RunnerShutdown…). */
  sendMessage(runnerId: number, messageType: string, body: unknown): void;
  /** The next `times` requests whose path matches answer `status` (429/5xx/401 drills). */
  failNext(path: RegExp, status: number, times?: number, headers?: Record<string, string>): void;
  /** Every runner access token stops working (a 401 on the next call), as after a key rotation. */
  revokeAccessTokens(): void;
  /** The service forgets every session (§4.1: TaskAgentSessionExpiredException on the next poll). */
  expireSessions(): void;
  /** The runner is deleted in GitHub's UI. */
  deleteRunner(id: number): void;
  /** Live lines of a record, in line order. */
  liveLines(job: FakeJob, recordId: string): string[];
  /** Hosts an action repository: `owner/name` with `files` in one commit tagged with `tags`; returns the commit. */
  publishAction(nameWithOwner: string, files: Record<string, string>, tags: string[]): Promise<string>;
  /** How many tarballs of an action repository were downloaded. */
  actionDownloads(nameWithOwner: string): number;
  waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void>;
  /** Artifacts and caches (the results service's twirp API and blobs, ../results/results-service.ts). */
  readonly results: ResultsService;
  close(): Promise<void>;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > 64 * 1024 * 1024) {
        reject(new HttpError(413, { message: "body too large" }));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString("utf8").replace(/^\uFEFF/, "")) as unknown;
  } catch {
    throw new HttpError(400, { message: "the body is not JSON" });
  }
}

/** A public key from the pipelines form (§1.4 d: unsigned big-endian modulus and exponent, base64). */
function keyFromParts(exponent: string, modulus: string): KeyObject {
  return createPublicKey({
    format: "jwk",
    key: {
      kty: "RSA",
      n: Buffer.from(modulus, "base64").toString("base64url"),
      e: Buffer.from(exponent, "base64").toString("base64url"),
    },
  });
}

/** A public key from the runner-admin form (§1.5: .NET's RSAKeyValue XML). */
function keyFromXml(xml: string): KeyObject {
  const modulus = /<Modulus>([^<]+)<\/Modulus>/.exec(xml)?.[1];
  const exponent = /<Exponent>([^<]+)<\/Exponent>/.exec(xml)?.[1];
  if (!modulus || !exponent) throw new HttpError(422, { message: "public_key is not an RSAKeyValue" });
  return keyFromParts(exponent, modulus);
}

const scopeOfPath = (parts: string[]) => {
  if (parts[0] === "repos" && parts.length >= 3) return { path: `repos/${parts[1]}/${parts[2]}`, rest: parts.slice(3) };
  if ((parts[0] === "orgs" || parts[0] === "enterprises") && parts.length >= 2)
    return { path: `${parts[0]}/${parts[1]}`, rest: parts.slice(2) };
  return undefined;
};

export async function startFakeGitHub(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
  const pollHoldMs = options.pollHoldMs ?? 50_000;
  const lockMs = options.lockMs ?? 10 * 60_000;
  const tokenLifetimeS = options.tokenLifetimeS ?? 3600;
  const registrationTokens = new Map<string, RegistrationToken>();
  const tenantTokens = new Map<string, { scopeUrl: string; expiresAt: number }>();
  const accessTokens = new Map<string, { runnerId: number; expiresAt: number }>();
  const pats = new Set<string>();
  const runners = new Map<number, FakeRunner>();
  const jobs = new Map<string, FakeJob>();
  const jobsByToken = new Map<string, FakeJob>();
  const tokenSecret = randomBytes(32);
  const logs = new Map<number, { jobId: string; text?: string }>();
  const blobs = new Map<string, { jobId: string; recordId?: string; text?: string }>();
  const calls: FakeGitHub["calls"] = [];
  const faults: Fault[] = [];
  const actionRepositories = await FakeActionRepositories.create();
  const waiters = new Set<() => void>();
  let nextRunnerId = 17;
  let nextMessageId = 1;
  let nextRequestId = 100;
  let nextLogId = 1;
  let url = "";
  const pools = [
    { id: 1, name: "Default", isHosted: false, isInternal: true, poolType: "automation", size: 0 },
    { id: 2, name: "omnios", isHosted: false, isInternal: false, poolType: "automation", size: 0 },
    { id: 3, name: "Azure Pipelines", isHosted: true, isInternal: false, poolType: "automation", size: 0 },
  ];
  const tenantBase = () => `${url}/tenant/acme/`;
  const authorizationUrl = () => `${url}/oauth/token`;
  const brokerUrl = () => `${url}/broker/`;
  const runServiceUrl = () => `${url}/run/`;
  const resultsUrl = () => `${url}/results/`;

  const wake = () => {
    for (const w of [...waiters]) w();
  };

  const bearer = (req: http.IncomingMessage) => /^Bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";

  /** §2: a runner access token, known and unexpired (401 otherwise). */
  const runnerOf = (req: http.IncomingMessage): FakeRunner => {
    const token = accessTokens.get(bearer(req));
    const runner = token && runners.get(token.runnerId);
    if (!token || token.expiresAt < Date.now() || !runner) {
      throw new HttpError(401, { message: "The access token is invalid or expired" });
    }
    if (runner.deleted) throw wrapped(404, "TaskAgentNotFoundException", `Agent ${runner.id} was not found`);
    return runner;
  };
  /** §1.4: the tenant credential of a registration, or a runner's own token. */
  const tenantCaller = (req: http.IncomingMessage): { scopeUrl: string; runner?: FakeRunner } => {
    const tenant = tenantTokens.get(bearer(req));
    if (tenant && tenant.expiresAt > Date.now()) return { scopeUrl: tenant.scopeUrl };
    const runner = runnerOf(req);
    return { scopeUrl: runner.scopeUrl, runner };
  };
  /** §6: the job token authorises only its own job. */
  const jobOf = (req: http.IncomingMessage, planId?: string, jobId?: string): FakeJob => {
    const job = jobsByToken.get(bearer(req));
    if (!job) throw new HttpError(401, { message: "The job token is invalid" });
    if ((planId && planId.toLowerCase() !== job.planId) || (jobId && jobId.toLowerCase() !== job.jobId)) {
      throw new HttpError(403, { message: "the token is not this job's" });
    }
    return job;
  };
  /** §1.3: RemoteAuth with a live registration (or removal) token for the URL's scope. */
  const remoteAuth = (
    req: http.IncomingMessage,
    kinds: RegistrationToken["kind"][] = ["registration"],
  ): RegistrationToken => {
    const token = /^RemoteAuth (.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const entry = registrationTokens.get(token);
    if (!entry || entry.expiresAt < Date.now() || !kinds.includes(entry.kind)) throw notFound();
    return entry;
  };
  /** §1.2: a PAT as basic base64("github:PAT") (official runner) or Bearer. */
  const patAuth = (req: http.IncomingMessage) => {
    const header = req.headers.authorization ?? "";
    const basic = /^basic (.+)$/i.exec(header)?.[1];
    const pat = basic
      ? Buffer.from(basic, "base64").toString("utf8").split(":").slice(1).join(":")
      : (/^(?:Bearer|token) (.+)$/i.exec(header)?.[1] ?? "");
    if (!pats.has(pat)) throw new HttpError(401, { message: "Bad credentials" });
  };

  const issueAccessToken = (runner: FakeRunner) => {
    const token = `runner-${randomBytes(16).toString("hex")}`;
    accessTokens.set(token, { runnerId: runner.id, expiresAt: Date.now() + tokenLifetimeS * 1000 });
    return token;
  };

  const registerRunner = (args: {
    scopeUrl: string;
    name: string;
    poolId: number;
    publicKey: KeyObject;
    labels: unknown[];
    ephemeral: boolean;
    version: string;
    useV2Flow: boolean;
    replaceId?: number;
  }): FakeRunner => {
    const existing = args.replaceId !== undefined ? runners.get(args.replaceId) : undefined;
    const runner: FakeRunner = {
      id: existing?.id ?? nextRunnerId++,
      name: args.name,
      poolId: args.poolId,
      labels: args.labels.map((l) => ({
        name: text(l, "name") ?? "",
        type: (text(l, "type") ?? "user").toLowerCase(),
      })),
      clientId: randomUUID(),
      publicKey: args.publicKey,
      ephemeral: args.ephemeral,
      version: args.version,
      useV2Flow: args.useV2Flow,
      scopeUrl: args.scopeUrl,
      deleted: false,
      queue: [],
    };
    runners.set(runner.id, runner);
    return runner;
  };

  const taskAgent = (runner: FakeRunner, withAuthorization: boolean) => ({
    id: runner.id,
    name: runner.name,
    version: runner.version,
    osDescription: "Linux",
    enabled: true,
    status: runner.session ? "online" : "offline",
    provisioningState: "Provisioned",
    maxParallelism: 1,
    ephemeral: runner.ephemeral,
    createdOn: new Date().toISOString(),
    labels: runner.labels.map((l, i) => ({ id: i + 1, name: l.name, type: l.type })),
    ...(withAuthorization
      ? {
          authorization: {
            authorizationUrl: authorizationUrl(),
            clientId: runner.clientId,
            publicKey: { exponent: "AQAB", modulus: "" },
          },
        }
      : {}),
    properties: runner.useV2Flow
      ? {
          ServerUrlV2: { $type: "System.String", $value: brokerUrl() },
          UseV2Flow: { $type: "System.Boolean", $value: true },
          RequireFipsCryptography: { $type: "System.Boolean", $value: false },
        }
      : { RequireFipsCryptography: { $type: "System.Boolean", $value: false } },
  });

  const enqueue = (runner: FakeRunner, messageType: string, body: unknown) => {
    runner.queue.push({
      messageId: nextMessageId++,
      messageType,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    wake();
  };

  /** §4.1 / §5.1: the next message this poll may take; jobs only for an Online runner. */
  const nextMessage = (runner: FakeRunner, status: string): FakeMessage | undefined =>
    runner.queue.find(
      (m) =>
        status.toLowerCase() === "online" ||
        (m.messageType !== "PipelineAgentJobRequest" && m.messageType !== "RunnerJobRequest"),
    );

  /** §4.1: encrypt a message body with the session key when the session has one. */
  const envelope = (runner: FakeRunner, message: FakeMessage) => {
    const key = runner.session?.aesKey;
    if (!key) return { messageId: message.messageId, messageType: message.messageType, body: message.body };
    const iv = randomBytes(16);
    const cipher = createCipheriv("aes-256-cbc", key, iv);
    const body = Buffer.concat([cipher.update(`\uFEFF${message.body}`, "utf8"), cipher.final()]).toString("base64");
    return { messageId: message.messageId, messageType: message.messageType, iV: iv.toString("base64"), body };
  };

  const poll = async (runner: FakeRunner, status: string, signal: AbortSignal): Promise<FakeMessage | undefined> => {
    runner.status = status;
    const deadline = Date.now() + pollHoldMs;
    for (;;) {
      if (!runner.session) return undefined;
      const message = nextMessage(runner, status);
      if (message) return message;
      const left = deadline - Date.now();
      if (left <= 0 || signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, left);
        waiters.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  };

  const newJob = (
    runner: FakeRunner,
    build: (ids: Parameters<typeof buildJobMessage>[1]) => { message: Json; stepIds: string[] },
    samePlanAs?: string,
  ): FakeJob => {
    const flow = runner.useV2Flow ? "broker" : "classic";
    const jobId = randomUUID();
    const planId = samePlanAs ?? randomUUID();
    const timelineId = randomUUID();
    // The job's access token is a JWT whose scp names the run and the job, as GitHub's: it is
    // ACTIONS_RUNTIME_TOKEN too, and @actions/artifact reads the ids from it.
    const jobToken = issueRuntimeToken(
      {
        scp: `Actions.GenericRead:00000000-0000-0000-0000-000000000000 Actions.Results:${planId}:${jobId}`,
        exp: Math.floor(Date.now() / 1000) + 6 * 3600,
      },
      tokenSecret,
    );
    const requestId = nextRequestId++;
    const runnerRequestId = randomUUID();
    const { message, stepIds } = build({
      messageType: flow === "broker" ? "RunnerJobRequest" : "PipelineAgentJobRequest",
      jobId,
      planId,
      timelineId,
      scopeIdentifier: randomUUID(),
      planType: "actions",
      requestId,
      systemVssUrl: flow === "broker" ? runServiceUrl() : tenantBase(),
      jobToken,
      resultsUrl: resultsUrl(),
      feedStreamUrl: flow === "broker" ? `${url.replace(/^http/, "ws")}/feed/${jobId}` : "",
      serverUrl: url,
      billingOwnerId: "billing-acme",
      // The runner resolves actions at an absolute path of this URL (its own path is dropped).
      launchUrl: flow === "broker" ? `${url}/launch/` : "",
    });
    const job: FakeJob = {
      jobId,
      planId,
      timelineId,
      requestId,
      runnerRequestId,
      runnerId: runner.id,
      flow,
      jobToken,
      stepIds,
      message,
      state: "queued",
      lockedUntil: 0,
      renewals: 0,
      cancelled: false,
      records: new Map(),
      live: new Map(),
      logs: new Map(),
      actionResolves: 0,
    };
    jobs.set(jobId, job);
    jobsByToken.set(jobToken, job);
    if (flow === "broker") {
      enqueue(runner, "RunnerJobRequest", {
        id: randomUUID(),
        runner_request_id: runnerRequestId,
        run_service_url: runServiceUrl(),
        billing_owner_id: "billing-acme",
        should_acknowledge: true,
      });
    } else {
      // A classic job is the runner's from the moment it is delivered: its lock starts now.
      job.state = "acquired";
      job.lockedUntil = Date.now() + lockMs;
      enqueue(runner, "PipelineAgentJobRequest", message);
    }
    return job;
  };

  /** §5.3: a job whose lock lapsed is abandoned. */
  const checkLock = (job: FakeJob) => {
    if (job.state === "acquired" && job.lockedUntil < Date.now()) job.state = "abandoned";
  };

  const renew = (job: FakeJob) => {
    checkLock(job);
    if (job.state !== "acquired") throw runServiceError(404, `job ${job.jobId} is no longer running`);
    job.lockedUntil = Date.now() + lockMs;
    job.renewals++;
    wake();
    return new Date(job.lockedUntil).toISOString();
  };

  const complete = (job: FakeJob, conclusion: unknown, outputs: unknown, stepResults: unknown[], raw: unknown) => {
    checkLock(job);
    if (job.state !== "acquired") throw runServiceError(404, `job ${job.jobId} is no longer running`);
    const name = enumName(conclusion, TASK_RESULTS);
    if (!name) throw new HttpError(400, { message: `conclusion ${String(conclusion)} is not a TaskResult` });
    const outs: Record<string, string> = {};
    if (typeof outputs === "object" && outputs !== null) {
      for (const [k, v] of Object.entries(outputs)) outs[k] = text(v, "value") ?? "";
    }
    job.completion = { conclusion: name, outputs: outs, stepResults, raw };
    job.state = "completed";
    wake();
  };

  const recordUpdate = (job: FakeJob, id: string, update: Partial<FakeRecord>) => {
    const key = id.toLowerCase();
    const record = job.records.get(key) ?? { id: key, history: [] };
    for (const [k, v] of Object.entries(update)) if (v !== undefined) (record as unknown as Json)[k] = v;
    const entry = `${record.state ?? ""}${record.result ? `/${record.result}` : ""}`;
    if (record.history[record.history.length - 1] !== entry) record.history.push(entry);
    job.records.set(key, record);
    wake();
  };

  const addLive = (job: FakeJob, body: unknown) => {
    const recordId = (text(body, "stepId") ?? "").toLowerCase();
    const start = integer(body, "startLine") ?? 1;
    const lines = array(body, "value").map(String);
    const map = job.live.get(recordId) ?? new Map<number, string>();
    for (const [i, line] of lines.entries()) map.set(start + i, line);
    job.live.set(recordId, map);
    wake();
  };

  // §1: GitHub REST (GHES form: the fake is not github.com).
  const rest = async (
    req: http.IncomingMessage,
    method: string,
    parts: string[],
    query: URLSearchParams,
    body: unknown,
  ) => {
    if (method === "POST" && parts.join("/") === "actions/runner-registration") {
      const token = remoteAuth(req, ["registration", "remove"]);
      const event = text(body, "runner_event");
      if (text(body, "url")?.replace(/\/+$/, "") !== token.scopeUrl) throw notFound();
      if ((event === "register" && token.kind !== "registration") || (event !== "register" && event !== "remove"))
        throw notFound();
      const tenantToken = `tenant-${randomBytes(12).toString("hex")}`;
      tenantTokens.set(tenantToken, { scopeUrl: token.scopeUrl, expiresAt: Date.now() + 3600_000 });
      return {
        status: 200,
        body: { url: tenantBase(), token_schema: "OAuthAccessToken", token: tenantToken, use_v2_flow: token.useV2Flow },
      };
    }
    if (method === "POST" && parts.join("/") === "actions/runners/register") {
      const token = remoteAuth(req);
      if (!token.useV2Flow) throw notFound();
      const groupId = integer(body, "group_id") ?? 0;
      const pool = pools.find((p) => p.id === groupId && !p.isHosted);
      if (!pool) throw new HttpError(422, { message: `runner group ${groupId} does not exist` });
      const replaceId = field(body, "replace") === true ? integer(body, "runner_id") : undefined;
      const runner = registerRunner({
        scopeUrl: token.scopeUrl,
        name: text(body, "name") ?? "",
        poolId: groupId,
        publicKey: keyFromXml(text(body, "public_key") ?? ""),
        labels: array(body, "labels"),
        ephemeral: field(body, "ephemeral") === true,
        version: text(body, "version") ?? "",
        useV2Flow: true,
        ...(replaceId !== undefined ? { replaceId } : {}),
      });
      return {
        status: 200,
        body: {
          id: runner.id,
          name: runner.name,
          authorization: {
            authorization_url: authorizationUrl(),
            server_url: brokerUrl(),
            client_id: runner.clientId,
            legacy_authorization_url: null,
          },
        },
      };
    }
    const scope = scopeOfPath(parts);
    if (!scope) throw notFound();
    const scopeUrl = `${url}/${scope.path.replace(/^repos\//, "").replace(/^orgs\//, "")}`;
    const rest = scope.rest.join("/");
    if (
      method === "POST" &&
      (rest === "actions/runners/registration-token" || rest === "actions/runners/remove-token")
    ) {
      patAuth(req);
      const kind = rest.endsWith("remove-token") ? "remove" : "registration";
      const token = `${kind === "remove" ? "AR" : "AA"}${randomBytes(14).toString("hex").toUpperCase()}`;
      const expiresAt = Date.now() + 3600_000;
      registrationTokens.set(token, { scopeUrl, expiresAt, useV2Flow: false, kind });
      return { status: 201, body: { token, expires_at: new Date(expiresAt).toISOString() } };
    }
    if (method === "POST" && rest === "actions/runners/generate-jitconfig") {
      patAuth(req);
      const groupId = integer(body, "runner_group_id");
      const labels = array(body, "labels").map(String);
      if (groupId === undefined) throw new HttpError(422, { message: "runner_group_id is required" });
      if (labels.length < 1 || labels.length > 100)
        throw new HttpError(422, { message: "labels must have 1 to 100 items" });
      if (!pools.some((p) => p.id === groupId && !p.isHosted))
        throw new HttpError(404, { message: "runner group not found" });
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const name = text(body, "name") ?? "jit";
      const runner = registerRunner({
        scopeUrl,
        name,
        poolId: groupId,
        publicKey,
        labels: ["self-hosted", "Linux", "X64", ...labels].map((n, i) => ({
          name: n,
          type: i < 3 ? "system" : "user",
        })),
        ephemeral: true,
        version: "2.336.0",
        useV2Flow: true,
      });
      const jwk = privateKey.export({ format: "jwk" });
      const b64 = (v: string | undefined) => Buffer.from(v ?? "", "base64url").toString("base64");
      // §1.7: PascalCase and string values, as GitHub writes .NET's files.
      const files = {
        ".runner": {
          AgentId: String(runner.id),
          AgentName: name,
          PoolId: String(groupId),
          PoolName: "Default",
          ServerUrl: tenantBase(),
          GitHubUrl: scopeUrl,
          WorkFolder: text(body, "work_folder") ?? "_work",
          UseV2Flow: "True",
          ServerUrlV2: brokerUrl(),
          Ephemeral: "True",
          DisableUpdate: "True",
        },
        ".credentials": {
          Scheme: "OAuth",
          Data: { ClientId: runner.clientId, AuthorizationUrl: authorizationUrl(), RequireFipsCryptography: "True" },
        },
        ".credentials_rsaparams": {
          D: b64(jwk.d),
          DP: b64(jwk.dp),
          DQ: b64(jwk.dq),
          Exponent: b64(jwk.e),
          InverseQ: b64(jwk.qi),
          Modulus: b64(jwk.n),
          P: b64(jwk.p),
          Q: b64(jwk.q),
        },
      };
      const encoded = Buffer.from(
        JSON.stringify(
          Object.fromEntries(
            Object.entries(files).map(([k, v]) => [k, Buffer.from(JSON.stringify(v)).toString("base64")]),
          ),
        ),
      ).toString("base64");
      return {
        status: 201,
        body: {
          runner: {
            id: runner.id,
            name,
            os: "unknown",
            status: "offline",
            busy: false,
            labels: runner.labels.map((l, i) => ({
              id: i + 1,
              name: l.name,
              type: l.type === "system" ? "read-only" : "custom",
            })),
          },
          encoded_jit_config: encoded,
        },
      };
    }
    if (method === "GET" && rest === "actions/runner-groups") {
      remoteAuth(req);
      return {
        status: 200,
        body: {
          total_count: 2,
          runner_groups: pools
            .filter((p) => !p.isHosted)
            .map((p) => ({ id: p.id, name: p.name, default: p.isInternal, is_hosted: p.isHosted })),
        },
      };
    }
    if (method === "GET" && rest === "actions/runners") {
      remoteAuth(req);
      const name = query.get("name");
      const found = [...runners.values()].filter(
        (r) => !r.deleted && r.scopeUrl === scopeUrl && (!name || r.name === name),
      );
      return {
        status: 200,
        body: {
          total_count: found.length,
          runners: found.map((r) => ({
            id: r.id,
            name: r.name,
            os: "Linux",
            status: r.session ? "online" : "offline",
            busy: false,
          })),
        },
      };
    }
    const runnerId = /^actions\/runners\/(\d+)$/.exec(rest)?.[1];
    if (method === "DELETE" && runnerId) {
      remoteAuth(req, ["remove", "registration"]);
      const runner = runners.get(Number(runnerId));
      if (!runner || runner.deleted || runner.scopeUrl !== scopeUrl) throw notFound();
      runner.deleted = true;
      runner.session = undefined;
      return { status: 204, body: undefined };
    }
    throw notFound();
  };

  // §1.4, §3, §4.1, §5.3, §7.1: the pipelines service ("tenant").
  const tenant = async (
    req: http.IncomingMessage,
    method: string,
    subPath: string,
    query: URLSearchParams,
    raw: Buffer,
    signal: AbortSignal,
  ) => {
    if (subPath === "_apis/connectionData") {
      return {
        status: 200,
        body: {
          instanceId: "00000000-0000-0000-0000-00000000acme",
          locationServiceData: {
            serviceDefinitions: ROUTES.map((r) => ({
              serviceType: r.area,
              identifier: r.id,
              displayName: r.name,
              relativeToSetting: 3,
              relativePath: r.path,
              resourceVersion: 2,
              minVersion: "1.0",
              maxVersion: "7.1",
              releasedVersion: "0.0",
            })),
          },
        },
      };
    }
    const match = ROUTE_MATCHERS.map((m) => ({ m, r: m.regex.exec(subPath) })).find((x) => x.r);
    if (!match?.r) throw notFound();
    const values: Record<string, string> = {};
    match.m.names.forEach((name, i) => {
      const v = match.r?.[i + 1];
      if (v !== undefined) values[name] = decodeURIComponent(v);
    });
    const name: RouteName = match.m.route.name;
    if (!/api-version=/.test(req.headers.accept ?? "") && !query.has("api-version")) {
      throw new HttpError(400, { message: "No api-version was supplied for the request" });
    }
    const body = () => parseJson(raw);
    switch (name) {
      case "pools": {
        tenantCaller(req);
        if (method !== "GET") break;
        return { status: 200, body: { count: pools.length, value: pools } };
      }
      case "agents": {
        const caller = tenantCaller(req);
        const poolId = Number(values.poolId);
        if (!pools.some((p) => p.id === poolId))
          throw wrapped(404, "TaskAgentPoolNotFoundException", `pool ${poolId} not found`);
        if (method === "GET") {
          const agentName = query.get("agentName");
          const list = [...runners.values()].filter(
            (r) =>
              !r.deleted &&
              r.poolId === poolId &&
              r.scopeUrl === caller.scopeUrl &&
              (!agentName || r.name === agentName),
          );
          return { status: 200, body: { count: list.length, value: list.map((r) => taskAgent(r, false)) } };
        }
        if (method === "POST" || method === "PUT") {
          const b = body();
          const publicKey = field(field(b, "authorization"), "publicKey");
          const replaceId = method === "PUT" ? Number(values.agentId) : undefined;
          if (
            method === "POST" &&
            [...runners.values()].some((r) => !r.deleted && r.poolId === poolId && r.name === text(b, "name"))
          ) {
            throw wrapped(409, "TaskAgentExistsException", `an agent named ${text(b, "name")} exists`);
          }
          const runner = registerRunner({
            scopeUrl: caller.scopeUrl,
            name: text(b, "name") ?? "",
            poolId,
            publicKey: keyFromParts(text(publicKey, "exponent") ?? "", text(publicKey, "modulus") ?? ""),
            labels: array(b, "labels"),
            ephemeral: field(b, "ephemeral") === true,
            version: text(b, "version") ?? "",
            useV2Flow: false,
            ...(replaceId !== undefined ? { replaceId } : {}),
          });
          return { status: 200, body: taskAgent(runner, true) };
        }
        if (method === "DELETE") {
          const runner = runners.get(Number(values.agentId));
          if (!runner || runner.deleted) throw wrapped(404, "TaskAgentNotFoundException", "agent not found");
          runner.deleted = true;
          runner.session = undefined;
          return { status: 204, body: undefined };
        }
        break;
      }
      case "sessions": {
        const runner = runnerOf(req);
        if (method === "POST") return { status: 200, body: openSession(runner, body(), false) };
        if (method === "DELETE") {
          if (runner.session?.id === values.sessionId?.toLowerCase()) runner.session = undefined;
          return { status: 204, body: undefined };
        }
        break;
      }
      case "messages": {
        const runner = runnerOf(req);
        const sessionId = (query.get("sessionId") ?? "").toLowerCase();
        if (!runner.session || runner.session.id !== sessionId || runner.session.broker) {
          throw wrapped(403, "TaskAgentSessionExpiredException", `session ${sessionId} is not valid`);
        }
        if (method === "GET") {
          const message = await poll(runner, query.get("status") ?? "Online", signal);
          return message ? { status: 200, body: envelope(runner, message) } : { status: 204, body: undefined };
        }
        if (method === "DELETE") {
          runner.queue = runner.queue.filter((m) => m.messageId !== Number(values.messageId));
          return { status: 204, body: undefined };
        }
        break;
      }
      case "jobrequests": {
        const runner = runnerOf(req);
        if (method !== "PATCH") break;
        if (query.get("lockToken") === null) throw new HttpError(400, { message: "lockToken is required" });
        const job = [...jobs.values()].find(
          (j) => j.requestId === Number(values.requestId) && j.runnerId === runner.id,
        );
        if (!job) throw wrapped(404, "TaskAgentJobNotFoundException", `job request ${values.requestId} not found`);
        const b = body();
        if (field(b, "result") !== undefined && field(b, "result") !== null) {
          complete(job, field(b, "result"), {}, [], b);
        } else {
          renew(job);
        }
        return {
          status: 200,
          body: {
            requestId: job.requestId,
            lockedUntil: new Date(job.lockedUntil).toISOString(),
            jobId: job.jobId,
            planId: job.planId,
            result: job.completion?.conclusion ?? null,
          },
        };
      }
      case "records": {
        const job = jobOf(req, values.planId);
        if (method !== "PATCH") break;
        for (const r of array(body(), "value")) {
          const id = text(r, "id") ?? "";
          const logText = logs.get(integer(field(r, "log"), "id") ?? -1)?.text;
          if (id.toLowerCase() === job.jobId) {
            if (logText !== undefined) job.jobLog = logText;
            continue;
          }
          if (logText !== undefined) job.logs.set(id.toLowerCase(), logText);
          recordUpdate(job, id, {
            name: text(r, "name"),
            order: integer(r, "order"),
            state: enumName(field(r, "state"), RECORD_STATES),
            result: enumName(field(r, "result"), TASK_RESULTS),
            startTime: text(r, "startTime"),
            finishTime: text(r, "finishTime"),
            logId: integer(field(r, "log"), "id"),
          });
        }
        return { status: 200, body: { count: 0, value: [] } };
      }
      case "actiondownloadinfo": {
        // actions/runner TaskHttpClientBase.ResolveActionDownloadInfoAsync: POST, ?jobId=, camelCase.
        const job = jobOf(req, values.planId, query.get("jobId") ?? "");
        if (method !== "POST") break;
        const resolved = await resolveActions(
          job,
          array(body(), "actions").map((a) => ({ name: text(a, "nameWithOwner") ?? "", ref: text(a, "ref") ?? "" })),
        );
        if ("unresolved" in resolved) {
          throw wrapped(422, "UnresolvableActionDownloadInfoException", resolved.unresolved.join(". "));
        }
        return {
          status: 200,
          body: {
            actions: Object.fromEntries(
              resolved.map((r) => [
                `${r.nameWithOwner}@${r.ref}`,
                {
                  nameWithOwner: r.nameWithOwner,
                  resolvedNameWithOwner: r.resolvedNameWithOwner,
                  resolvedSha: r.resolvedSha,
                  tarballUrl: r.tarballUrl,
                  zipballUrl: r.zipballUrl,
                  ref: r.ref,
                  authentication: { token: r.token, expiresAt: r.expiresAt },
                },
              ]),
            ),
          },
        };
      }
      case "feed": {
        const job = jobOf(req, values.planId);
        addLive(job, body());
        return { status: 204, body: undefined };
      }
      case "logs": {
        const job = jobOf(req, values.planId);
        if (method === "POST" && !values.logId) {
          const id = nextLogId++;
          logs.set(id, { jobId: job.jobId });
          return {
            status: 200,
            body: { id, path: text(body(), "path") ?? "", createdOn: new Date().toISOString(), lineCount: 0 },
          };
        }
        if (method === "POST" && values.logId) {
          const log = logs.get(Number(values.logId));
          if (!log || log.jobId !== job.jobId) throw notFound();
          if (!/octet-stream/.test(req.headers["content-type"] ?? ""))
            throw new HttpError(415, { message: "logs are application/octet-stream" });
          log.text = raw.toString("utf8");
          return {
            status: 200,
            body: { id: Number(values.logId), lineCount: log.text.split("\n").filter(Boolean).length },
          };
        }
        break;
      }
      case "events": {
        const job = jobOf(req, values.planId);
        const b = body();
        if (text(b, "name") !== "JobCompleted" || text(b, "jobId")?.toLowerCase() !== job.jobId) {
          throw new HttpError(400, { message: "only JobCompleted for this job" });
        }
        complete(job, field(b, "result"), field(b, "outputs"), [], b);
        return { status: 200, body: undefined };
      }
      default:
        break;
    }
    throw new HttpError(405, { message: `${method} is not allowed on ${name}` });
  };

  /** §3: a session; the key is RSA-OAEP(SHA-1)-encrypted with the runner's public key when encryption is on. */
  const openSession = (runner: FakeRunner, body: unknown, broker: boolean) => {
    if (runner.session) {
      throw broker
        ? new HttpError(409, { message: "a session exists" })
        : wrapped(409, "TaskAgentSessionConflictException", `a session for agent ${runner.name} exists`);
    }
    if (integer(field(body, "agent"), "id") !== runner.id)
      throw new HttpError(400, { message: "agent.id is not the token's runner" });
    const aesKey = options.encryptMessages ? randomBytes(32) : undefined;
    runner.session = { id: randomUUID(), broker, ...(aesKey ? { aesKey } : {}) };
    return {
      sessionId: runner.session.id,
      ownerName: text(body, "ownerName") ?? "",
      agent: { id: runner.id, name: runner.name, version: runner.version, osDescription: "Linux" },
      ...(aesKey
        ? {
            encryptionKey: {
              encrypted: true,
              value: publicEncrypt(
                { key: runner.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
                aesKey,
              ).toString("base64"),
            },
          }
        : {}),
    };
  };

  // §3, §5.1: the broker.
  const broker = async (
    req: http.IncomingMessage,
    method: string,
    subPath: string,
    query: URLSearchParams,
    body: unknown,
    signal: AbortSignal,
  ) => {
    let runner: FakeRunner;
    try {
      runner = runnerOf(req);
    } catch (error) {
      if (error instanceof HttpError && error.status === 404)
        throw brokerError(404, "RunnerNotFound", "runner not found");
      throw error;
    }
    if (subPath === "session" && method === "POST") return { status: 200, body: openSession(runner, body, true) };
    if (subPath === "session" && method === "DELETE") {
      runner.session = undefined;
      return { status: 200, body: undefined };
    }
    const sessionId = (query.get("sessionId") ?? "").toLowerCase();
    if (!runner.session || runner.session.id !== sessionId)
      throw brokerError(404, "RunnerSessionInvalid", `session ${sessionId} is not valid`);
    if (subPath === "message" && method === "GET") {
      const message = await poll(runner, query.get("status") ?? "Online", signal);
      if (!message) return { status: 204, body: undefined };
      // No DELETE on the broker: a delivered message is gone.
      runner.queue = runner.queue.filter((m) => m !== message);
      return { status: 200, body: envelope(runner, message) };
    }
    if (subPath === "acknowledge" && method === "POST") {
      const id = text(body, "runnerRequestId") ?? "";
      if (![...jobs.values()].some((j) => j.runnerRequestId === id))
        throw brokerError(404, "AcknowledgeJobNotFound", `no job ${id}`);
      return { status: 200, body: undefined };
    }
    throw notFound();
  };

  /** Every reference resolved with a download token, or the messages of those that cannot be. */
  const resolveActions = async (
    job: FakeJob,
    wanted: { name: string; ref: string }[],
  ): Promise<ResolvedAction[] | { unresolved: string[] }> => {
    job.actionResolves++;
    const answers = await Promise.all(wanted.map((w) => actionRepositories.resolve(w.name, w.ref, url)));
    const unresolved = wanted
      .filter((_, i) => answers[i] === undefined)
      .map((w) => `Unable to resolve action \`${w.name}@${w.ref}\`, repository or version not found`);
    if (unresolved.length > 0) return { unresolved };
    return answers.filter((a): a is ResolvedAction => a !== undefined);
  };

  // The Launch service of run-service jobs (actions/runner LaunchHttpClient): snake_case,
  // POST /actions/build/{planId}/jobs/{jobId}/runnerresolve/actions with the job's token, at
  // the root of system.github.launch_endpoint's host (the client builds an absolute-path URI).
  const launch = async (req: http.IncomingMessage, method: string, parts: string[], body: unknown) => {
    const [actions, build, planId, jobs, jobId, runnerresolve, what] = parts;
    if (
      method !== "POST" ||
      actions !== "actions" ||
      build !== "build" ||
      jobs !== "jobs" ||
      runnerresolve !== "runnerresolve" ||
      what !== "actions"
    )
      throw notFound();
    const job = jobOf(req, planId, jobId);
    const resolved = await resolveActions(
      job,
      array(body, "actions").map((a) => ({ name: text(a, "action") ?? "", ref: text(a, "version") ?? "" })),
    );
    if ("unresolved" in resolved) {
      throw new HttpError(422, {
        errors: Object.fromEntries(resolved.unresolved.map((message, i) => [String(i), { message }])),
      });
    }
    return {
      status: 200,
      body: {
        actions: Object.fromEntries(
          resolved.map((r) => [
            `${r.nameWithOwner}@${r.ref}`,
            {
              name: r.nameWithOwner,
              resolved_name: r.resolvedNameWithOwner,
              resolved_sha: r.resolvedSha,
              tar_url: r.tarballUrl,
              zip_url: r.zipballUrl,
              version: r.ref,
              authentication: { token: r.token, expires_at: r.expiresAt },
            },
          ]),
        ),
      },
    };
  };

  // §5.2: the run service.
  const runService = async (req: http.IncomingMessage, method: string, subPath: string, body: unknown) => {
    if (method !== "POST") throw notFound();
    if (subPath === "acquirejob") {
      const runner = runnerOf(req);
      const job = [...jobs.values()].find((j) => j.runnerRequestId === text(body, "jobMessageId"));
      if (!job || job.runnerId !== runner.id) throw runServiceError(404, "job not found");
      if (job.state !== "queued") throw runServiceError(409, "job already acquired");
      job.state = "acquired";
      job.lockedUntil = Date.now() + lockMs;
      wake();
      return { status: 200, body: job.message };
    }
    if (subPath === "renewjob") {
      const job = jobOf(req, text(body, "planId"), text(body, "jobId"));
      return { status: 200, body: { lockedUntil: renew(job) } };
    }
    if (subPath === "completejob") {
      const job = jobOf(req, text(body, "planId"), text(body, "jobId"));
      complete(job, field(body, "conclusion"), field(body, "outputs"), array(body, "stepResults"), body);
      return { status: 200, body: undefined };
    }
    throw notFound();
  };

  // §7.2: the Results service (twirp, snake_case, numeric enums).
  const STATUS_NUMBERS: Record<number, string> = { 0: "unknown", 3: "inProgress", 5: "pending", 6: "completed" };
  const CONCLUSION_NUMBERS: Record<number, string> = {
    0: "",
    2: "succeeded",
    3: "failed",
    4: "canceled",
    7: "skipped",
  };
  const results = async (req: http.IncomingMessage, method: string, subPath: string, body: unknown) => {
    if (method !== "POST") throw notFound();
    const job = jobOf(req, text(body, "workflow_run_backend_id"), text(body, "workflow_job_run_backend_id"));
    const method_ = subPath.replace(/^twirp\//, "");
    const signed = (recordId?: string) => {
      const id = randomUUID();
      blobs.set(id, { jobId: job.jobId, ...(recordId ? { recordId } : {}) });
      return {
        logs_url: `${url}/blobs/${id}?sig=${randomBytes(8).toString("hex")}`,
        blob_storage_type: "BLOB_STORAGE_TYPE_UNSPECIFIED",
      };
    };
    switch (method_) {
      case "github.actions.results.api.v1.WorkflowStepUpdateService/WorkflowStepsUpdate":
        for (const step of array(body, "steps")) {
          const status = field(step, "status");
          const conclusion = field(step, "conclusion");
          recordUpdate(job, text(step, "external_id") ?? "", {
            name: text(step, "name"),
            order: integer(step, "number"),
            state: typeof status === "number" ? STATUS_NUMBERS[status] : enumName(status, RECORD_STATES),
            result:
              (typeof conclusion === "number" ? CONCLUSION_NUMBERS[conclusion] : enumName(conclusion, TASK_RESULTS)) ||
              undefined,
            startTime: text(step, "started_at"),
            finishTime: text(step, "completed_at"),
          });
        }
        return { status: 200, body: {} };
      case "results.services.receiver.Receiver/GetStepLogsSignedBlobURL":
        return { status: 200, body: signed((text(body, "step_backend_id") ?? "").toLowerCase()) };
      case "results.services.receiver.Receiver/GetJobLogsSignedBlobURL":
        return { status: 200, body: signed() };
      case "results.services.receiver.Receiver/CreateStepLogsMetadata":
      case "results.services.receiver.Receiver/CreateJobLogsMetadata":
        return { status: 200, body: { ok: true } };
      default:
        throw new HttpError(404, { code: "bad_route", msg: `no handler for ${method_}` });
    }
  };

  const handle = async (req: http.IncomingMessage, signal: AbortSignal) => {
    const u = new URL(req.url ?? "/", "http://fake");
    const method = req.method ?? "GET";
    const path = u.pathname;
    const raw = await readBody(req);
    const fault = faults.find((f) => f.times > 0 && f.path.test(path));
    if (fault) {
      fault.times--;
      throw new HttpError(fault.status, fault.body ?? { message: `injected ${fault.status}` }, fault.headers ?? {});
    }
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    // A repository's tarball, as api.github.com/repos/{owner}/{repo}/tarball/{sha} serves it.
    if (method === "GET" && parts[0] === "api" && parts[1] === "v3" && parts[2] === "repos" && parts[5] === "tarball") {
      const archive = await actionRepositories.tarball(
        `${parts[3]}/${parts[4]}`.toLowerCase(),
        parts[6] ?? "",
        req.headers.authorization ?? "",
      );
      if (typeof archive === "number")
        throw new HttpError(archive, { message: archive === 401 ? "Bad credentials" : "Not Found" });
      return { status: 200, body: undefined, bytes: archive };
    }
    if (parts[0] === "api" && parts[1] === "v3")
      return rest(req, method, parts.slice(2), u.searchParams, parseJson(raw));
    if (parts[0] === "tenant" && parts[1] === "acme")
      return tenant(req, method, parts.slice(2).join("/"), u.searchParams, raw, signal);
    if (parts[0] === "broker")
      return broker(req, method, parts.slice(1).join("/"), u.searchParams, parseJson(raw), signal);
    if (parts[0] === "run") return runService(req, method, parts.slice(1).join("/"), parseJson(raw));
    if (parts[0] === "actions" && parts[1] === "build") return launch(req, method, parts, parseJson(raw));
    if (parts[0] === "results") return results(req, method, parts.slice(1).join("/"), parseJson(raw));
    if (parts[0] === "oauth" && parts[1] === "token" && method === "POST") return oauth(req, raw);
    if (parts[0] === "blobs" && method === "PUT") {
      const blob = blobs.get(parts[1] ?? "");
      if (!blob) throw notFound();
      const job = jobs.get(blob.jobId);
      const content = raw.toString("utf8");
      if (job && blob.recordId) job.logs.set(blob.recordId, content);
      else if (job) job.jobLog = content;
      wake();
      return { status: 201, body: undefined };
    }
    throw notFound();
  };

  // §2: the token endpoint.
  const oauth = async (req: http.IncomingMessage, raw: Buffer) => {
    if (!/x-www-form-urlencoded/.test(req.headers["content-type"] ?? ""))
      throw new HttpError(400, { error: "invalid_request", error_description: "form body expected" });
    const form = new URLSearchParams(raw.toString("utf8"));
    if (
      form.get("grant_type") !== "client_credentials" ||
      form.get("client_assertion_type") !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ) {
      throw new HttpError(400, {
        error: "unsupported_grant_type",
        error_description: "client_credentials with a jwt-bearer assertion expected",
      });
    }
    try {
      const { clientId } = verifyAssertion(form.get("client_assertion") ?? "", authorizationUrl(), (id) => {
        const runner = [...runners.values()].find((r) => r.clientId === id && !r.deleted);
        return runner?.publicKey;
      });
      const runner = [...runners.values()].find((r) => r.clientId === clientId);
      if (!runner) throw new AssertionError("unknown_client", "unknown client");
      return {
        status: 200,
        body: { access_token: issueAccessToken(runner), token_type: "bearer", expires_in: tokenLifetimeS },
      };
    } catch (error) {
      if (!(error instanceof AssertionError)) throw error;
      const description =
        error.reason === "unknown_client"
          ? "The runner registration was not found: it was deleted, or never existed"
          : error.message;
      throw new HttpError(error.reason === "unknown_client" ? 400 : 401, {
        error: "invalid_client",
        error_description: description,
      });
    }
  };

  const resultsService = createResultsService({
    flavor: "github",
    baseUrl: () => url,
    authorize(token) {
      const job = jobsByToken.get(token);
      if (!job || !verifyRuntimeToken(token, tokenSecret)) return undefined;
      const github = String(JSON.stringify(job.message)).match(/"k":"repository","v":"([^"]+)"/)?.[1] ?? "acme/app";
      return { runId: job.planId, jobId: job.jobId, repository: github };
    },
  });

  const server = http.createServer((req, res) => {
    if (resultsService.handle(req, res)) return;
    const controller = new AbortController();
    res.on("close", () => controller.abort());
    handle(req, controller.signal)
      .then(({ status, body, bytes }: { status: number; body: unknown; bytes?: Buffer }) => {
        calls.push({
          method: req.method ?? "",
          path: new URL(req.url ?? "/", "http://fake").pathname,
          status,
          auth: req.headers.authorization?.split(" ")[0] ?? "",
          at: Date.now(),
        });
        if (bytes !== undefined) res.writeHead(status, { "content-type": "application/x-gzip" }).end(bytes);
        else if (body === undefined) res.writeHead(status).end();
        else res.writeHead(status, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
      })
      .catch((error: unknown) => {
        const e = error instanceof HttpError ? error : new HttpError(500, { message: String(error) });
        calls.push({
          method: req.method ?? "",
          path: new URL(req.url ?? "/", "http://fake").pathname,
          status: e.status,
          auth: req.headers.authorization?.split(" ")[0] ?? "",
          at: Date.now(),
        });
        if (!res.headersSent)
          res
            .writeHead(e.status, { "content-type": "application/json; charset=utf-8", ...e.headers })
            .end(JSON.stringify(e.body));
      });
  });

  // §7.2: the live feed of broker jobs, a WebSocket at FeedStreamUrl authorised with the job's token.
  const sockets = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    const jobId = /^\/feed\/([0-9a-f-]+)$/.exec(new URL(req.url ?? "/", "http://fake").pathname)?.[1];
    const job = jobsByToken.get(bearer(req));
    if (!jobId || !job || job.jobId !== jobId) {
      socket.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
      return;
    }
    sockets.handleUpgrade(req, socket, head, (ws) => {
      ws.on("message", (data) => {
        try {
          addLive(job, JSON.parse(data.toString()));
        } catch {
          ws.close(1003, "frames are JSON");
        }
      });
    });
  });

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  url = `http://${options.publicHost ?? host}:${(server.address() as AddressInfo).port}`;

  return {
    get url() {
      return url;
    },
    runners,
    jobs,
    calls,
    results: resultsService,
    addRegistrationToken(scopeUrl, opts = {}) {
      const token = `AA${randomBytes(14).toString("hex").toUpperCase()}`;
      registrationTokens.set(token, {
        scopeUrl: scopeUrl.replace(/\/+$/, ""),
        expiresAt: Date.now() + (opts.expiresInMs ?? 3600_000),
        useV2Flow: opts.useV2Flow ?? false,
        kind: "registration",
      });
      return token;
    },
    addRemoveToken(scopeUrl, opts = {}) {
      const token = `AR${randomBytes(14).toString("hex").toUpperCase()}`;
      registrationTokens.set(token, {
        scopeUrl: scopeUrl.replace(/\/+$/, ""),
        expiresAt: Date.now() + 3600_000,
        useV2Flow: opts.useV2Flow ?? false,
        kind: "remove",
      });
      return token;
    },
    addPat(pat) {
      pats.add(pat);
    },
    runnerByName(name) {
      return [...runners.values()].find((r) => r.name === name && !r.deleted);
    },
    queueJob(runnerId, spec) {
      const runner = runners.get(runnerId);
      if (!runner) throw new Error(`no runner ${runnerId}`);
      const planId = spec.sameRunAs ? jobs.get(spec.sameRunAs)?.planId : undefined;
      if (spec.sameRunAs && !planId) throw new Error(`no job ${spec.sameRunAs}`);
      return newJob(runner, (ids) => buildJobMessage(spec, ids), planId);
    },
    queueRawJob(runnerId, message) {
      const runner = runners.get(runnerId);
      if (!runner) throw new Error(`no runner ${runnerId}`);
      return newJob(runner, (ids) => {
        const copy = structuredClone(message) as Json & {
          plan: Json;
          timeline: Json;
          resources: { endpoints: Json[] };
          steps: Json[];
        };
        copy.messageType = ids.messageType;
        copy.jobId = ids.jobId;
        copy.requestId = ids.requestId;
        copy.plan = { ...copy.plan, planId: ids.planId, scopeIdentifier: ids.scopeIdentifier, planType: ids.planType };
        copy.timeline = { ...copy.timeline, id: ids.timelineId };
        copy.resources.endpoints = copy.resources.endpoints.map((e) =>
          text(e, "name") === "SystemVssConnection"
            ? {
                ...e,
                url: ids.systemVssUrl,
                authorization: { scheme: "OAuth", parameters: { AccessToken: ids.jobToken } },
                data: { ...(field(e, "data") as Json), FeedStreamUrl: ids.feedStreamUrl || undefined },
              }
            : e,
        );
        const variables = (field(copy, "variables") ?? {}) as Json;
        variables["system.github.results_endpoint"] = { value: ids.resultsUrl, isSecret: false };
        copy.variables = variables;
        return { message: copy, stepIds: copy.steps.map((s) => (text(s, "id") ?? "").toLowerCase()) };
      });
    },
    cancelJob(jobId) {
      const job = jobs.get(jobId);
      const runner = job && runners.get(job.runnerId);
      if (!job || !runner) throw new Error(`no job ${jobId}`);
      job.cancelled = true;
      enqueue(runner, "JobCancellation", { jobId, timeout: "00:05:00" });
    },
    sendMessage(runnerId, messageType, body) {
      const runner = runners.get(runnerId);
      if (!runner) throw new Error(`no runner ${runnerId}`);
      enqueue(runner, messageType, body);
    },
    failNext(path, status, times = 1, headers) {
      faults.push({ path, status, times, ...(headers ? { headers } : {}) });
    },
    revokeAccessTokens() {
      accessTokens.clear();
    },
    expireSessions() {
      for (const runner of runners.values()) runner.session = undefined;
      wake();
    },
    deleteRunner(id) {
      const runner = runners.get(id);
      if (runner) {
        runner.deleted = true;
        runner.session = undefined;
      }
      wake();
    },
    publishAction(nameWithOwner, files, tags) {
      return actionRepositories.publish(nameWithOwner, files, tags);
    },
    actionDownloads(nameWithOwner) {
      return actionRepositories.downloadsOf(nameWithOwner);
    },
    liveLines(job, recordId) {
      const map = job.live.get(recordId.toLowerCase()) ?? new Map<number, string>();
      return [...map.entries()].sort(([a], [b]) => a - b).map(([, line]) => line);
    },
    async waitFor(predicate, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      wake();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await actionRepositories.close();
    },
  };
}
