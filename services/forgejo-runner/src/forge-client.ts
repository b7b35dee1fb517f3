import { randomUUID } from "node:crypto";
import { type Client, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PingService } from "./gen/ping/v1/services_pb.ts";
import { RunnerService } from "./gen/runner/v1/services_pb.ts";

export interface ForgeClientOptions {
  /** The instance URL as the admin types it, e.g. https://forgejo.example.com (trailing slash allowed). */
  address: string;
  /** Runner credentials from Register; absent only while registering. */
  credentials?: { uuid: string; token: string };
  /** Deadline of each call. Default 60000, as the Forgejo runner's client. */
  callTimeoutMs?: number;
  /** Told the outcome of every call (`error` undefined on success): readiness and metrics follow the forge. */
  observe?: (method: string, error: ConnectError | undefined) => void;
}

export interface ForgeClient {
  /** The instance URL, without a trailing slash: the base of the services it gives jobs (artifacts). */
  readonly address: string;
  readonly runner: Client<typeof RunnerService>;
  readonly ping: Client<typeof PingService>;
}

/** The forge's RPCs live under <instance>/api/actions, as the official runners address them. */
export function actionsBaseUrl(address: string): string {
  return `${address.replace(/\/+$/, "")}/api/actions`;
}

export function createForgeClient(opts: ForgeClientOptions): ForgeClient {
  let requestKey = randomUUID();
  const auth: Interceptor = (next) => async (req) => {
    if (opts.credentials) {
      req.header.set("x-runner-uuid", opts.credentials.uuid);
      req.header.set("x-runner-token", opts.credentials.token);
    }
    if (req.method.name !== "FetchTask" || req.header.has("x-runner-request-key")) return next(req);
    // Newer Forgejo servers hand a fetch retried with the same key the same tasks instead of
    // assigning new ones, so the key changes only once a fetch got its answer.
    req.header.set("x-runner-request-key", requestKey);
    const res = await next(req);
    requestKey = randomUUID();
    return res;
  };
  const observe: Interceptor = (next) => async (req) => {
    try {
      const res = await next(req);
      opts.observe?.(req.method.name, undefined);
      return res;
    } catch (error) {
      opts.observe?.(req.method.name, ConnectError.from(error));
      throw error;
    }
  };
  const transport = createConnectTransport({
    baseUrl: actionsBaseUrl(opts.address),
    httpVersion: "1.1",
    // Binary protobuf is what the official runners send.
    useBinaryFormat: true,
    interceptors: [observe, auth],
    defaultTimeoutMs: opts.callTimeoutMs ?? 60_000,
  });
  return {
    address: opts.address.replace(/\/+$/, ""),
    runner: createClient(RunnerService, transport),
    ping: createClient(PingService, transport),
  };
}
