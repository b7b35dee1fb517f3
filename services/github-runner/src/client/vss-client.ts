import { randomUUID } from "node:crypto";
import { GitHubRunnerError, HttpStatusError } from "../errors.ts";
import { type HttpRequest, type HttpResponse, httpRequest, jsonOf } from "./http.ts";
import { list, num, prop, str } from "./wire-json.ts";

/** Where a Bearer token comes from; `invalidate` is called once when a call answers 401. */
export interface BearerAuth {
  token(signal?: AbortSignal): Promise<string>;
  invalidate(): void;
}

/** A fixed token (a job's token): nothing to refresh. */
export function fixedBearer(token: string): BearerAuth {
  return { token: async () => token, invalidate: () => {} };
}

/** The resource location ids of the pipelines service (the official runner's TaskResourceIds). */
export const LOCATIONS = {
  pools: "a8c47e17-4d56-4a56-92bb-de7ea7dc65be",
  agents: "e298ef32-5878-4cab-993c-043836571f42",
  sessions: "134e239e-2df3-4794-a6f6-24f1f19ec8dc",
  messages: "c3a054f6-7a8a-49c0-944e-3a8e5d7adfd7",
  jobRequests: "fc825784-c92a-4299-9221-998a02d1b54f",
  timelineRecords: "8893bc5b-35b2-4be7-83cb-99e683551db4",
  recordFeed: "858983e4-19bd-4c5e-864c-507b59b58b12",
  logs: "46f5667d-263a-4684-91b1-dff7fdcf64e2",
  planEvents: "557624af-b29e-4c20-8ab0-0399d2204f3f",
  actionDownloadInfo: "27d7f831-88c1-4719-8ca1-6a061dad90eb",
} as const;

interface ServiceDefinition {
  relativePath: string;
  minVersion: number;
  maxVersion: number;
  releasedVersion: number;
}

function parseVersion(text: string | undefined): number {
  const n = Number.parseFloat(text ?? "0");
  return Number.isFinite(n) ? n : 0;
}

/**
 * The api-version to send: ours, unless the server's maximum is lower, then the server's
 * (marked -preview when it is not released), as VssHttpClientBase negotiates.
 */
export function negotiateVersion(
  wanted: string,
  def: Pick<ServiceDefinition, "minVersion" | "maxVersion" | "releasedVersion">,
): string {
  const ours = parseVersion(wanted);
  if (def.maxVersion > 0 && def.maxVersion < ours) {
    const max = def.maxVersion.toFixed(1);
    return def.releasedVersion < def.maxVersion ? `${max}-preview` : max;
  }
  if (def.minVersion > ours) {
    throw new GitHubRunnerError(
      "protocol_error",
      `the service needs api-version ${def.minVersion} or newer for this call; this runner speaks ${wanted}`,
    );
  }
  return wanted;
}

/** Substitutes route values; a placeholder without a value goes, with the "/" before it. */
export function expandRoute(template: string, values: Record<string, string | number | undefined>): string {
  return template
    .replace(/\/?\{([^}]+)\}/g, (whole, name: string) => {
      const value = values[name];
      if (value === undefined || value === "") return "";
      return whole.replace(`{${name}}`, encodeURIComponent(String(value)));
    })
    .replace(/^\/+/, "");
}

export interface VssCall {
  method: HttpRequest["method"];
  location: string;
  apiVersion: string;
  route?: Record<string, string | number | undefined>;
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  /** Raw bytes (log uploads), sent as application/octet-stream. */
  body?: string | Uint8Array;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * A client of the Azure-DevOps-derived pipelines service: routes come from its
 * `_apis/connectionData` (never hard-coded), api-version goes in the headers and the query, and
 * a 401 refreshes the token and retries once.
 */
export class VssClient {
  private definitions: Promise<Map<string, ServiceDefinition>> | undefined;
  private readonly session = randomUUID();

  constructor(
    readonly baseUrl: string,
    private readonly auth: BearerAuth,
  ) {}

  private base(): string {
    return this.baseUrl.replace(/\/+$/, "");
  }

  private async locations(signal?: AbortSignal): Promise<Map<string, ServiceDefinition>> {
    this.definitions ??= (async () => {
      const res = await this.send(
        {
          method: "GET",
          url: `${this.base()}/_apis/connectionData?connectOptions=1&lastChangeId=-1&lastChangeId64=-1`,
          headers: { Accept: "application/json" },
          timeoutMs: 60_000,
          ...(signal ? { signal } : {}),
        },
        true,
      );
      const defs = new Map<string, ServiceDefinition>();
      const services = list(prop(prop(jsonOf(res), "locationServiceData"), "serviceDefinitions"));
      for (const def of services) {
        const id = str(prop(def, "identifier"))?.toLowerCase();
        const relativePath = str(prop(def, "relativePath"));
        if (!id || relativePath === undefined || (num(prop(def, "resourceVersion")) ?? 0) <= 0) continue;
        defs.set(id, {
          relativePath,
          minVersion: parseVersion(str(prop(def, "minVersion"))),
          maxVersion: parseVersion(str(prop(def, "maxVersion"))),
          releasedVersion: parseVersion(str(prop(def, "releasedVersion"))),
        });
      }
      return defs;
    })();
    try {
      return await this.definitions;
    } catch (error) {
      this.definitions = undefined;
      throw error;
    }
  }

  async call(call: VssCall): Promise<HttpResponse> {
    const defs = await this.locations(call.signal);
    const def = defs.get(call.location);
    if (!def) {
      throw new GitHubRunnerError(
        "protocol_error",
        `the pipelines service at ${this.base()} does not offer resource ${call.location}`,
        "the service is not a GitHub Actions service, or it changed; check the runner's URL",
      );
    }
    const version = negotiateVersion(call.apiVersion, def);
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) query.set(k, String(v));
    query.set("api-version", version);
    const url = `${this.base()}/${expandRoute(def.relativePath, call.route ?? {})}?${query}`;
    const headers: Record<string, string> = {
      Accept: `application/json;api-version=${version}`,
      "X-VSS-E2EID": randomUUID(),
      "X-TFS-Session": this.session,
      "X-TFS-FedAuthRedirect": "Suppress",
    };
    if (call.json !== undefined) headers["Content-Type"] = `application/json; charset=utf-8;api-version=${version}`;
    if (call.body !== undefined) headers["Content-Type"] = "application/octet-stream";
    return this.send(
      {
        method: call.method,
        url,
        headers,
        ...(call.json !== undefined ? { json: call.json } : {}),
        ...(call.body !== undefined ? { body: call.body } : {}),
        ...(call.timeoutMs ? { timeoutMs: call.timeoutMs } : {}),
        ...(call.signal ? { signal: call.signal } : {}),
      },
      true,
    );
  }

  private async send(req: HttpRequest, retryUnauthorized: boolean): Promise<HttpResponse> {
    const token = await this.auth.token(req.signal);
    try {
      return await httpRequest({ ...req, headers: { ...req.headers, Authorization: `Bearer ${token}` } });
    } catch (error) {
      if (retryUnauthorized && error instanceof HttpStatusError && error.status === 401) {
        this.auth.invalidate();
        return this.send(req, false);
      }
      throw error;
    }
  }
}
