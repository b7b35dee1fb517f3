import { hostname, release } from "node:os";
import { Backoff, parseLabel, type RunnerLabel, sleep } from "@solstice/forge-relay";
import type { Logger } from "pino";
import { type GitHubScope, parseGitHubUrl } from "../client/github-url.ts";
import { httpRequest, jsonOf } from "../client/http.ts";
import { RunnerTokenSource } from "../client/oauth.ts";
import { fixedBearer, LOCATIONS, VssClient } from "../client/vss-client.ts";
import { bool, isRecord, list, num, prop, str } from "../client/wire-json.ts";
import { GitHubRunnerError, HttpStatusError, HttpUnreachableError } from "../errors.ts";
import { RUNNER_ARCH, RUNNER_OS, RUNNER_VERSION } from "../version.ts";
import { generateRunnerKey, publicKeyParts, publicKeyXml } from "./rsa-key.ts";
import {
  isConfigured,
  type RunnerCredentials,
  type RunnerRegistration,
  type RunnerSettings,
  readRegistration,
  removeRegistration,
  writeRegistration,
} from "./runner-files.ts";

export interface RegisterOptions {
  /** The repository, organization or enterprise URL, e.g. https://github.com/acme/app. */
  url: string;
  /** The registration token GitHub shows in Settings → Actions → Runners → New self-hosted runner. */
  token: string;
  name: string;
  /** `name` or `name:vm:<fleet label>`; all must be served by one fleet label. */
  labels: readonly string[];
  /** The runner group (organization) or pool to join; the default one when absent. */
  runnerGroup?: string;
  /** Where the .runner, .credentials and .credentials_rsaparams files go. */
  dir: string;
  /** Take over a runner of the same name instead of failing. */
  replace?: boolean;
  /** Take one job, then GitHub removes the runner. */
  ephemeral?: boolean;
  log: Logger;
  signal?: AbortSignal;
}

interface TenantCredential {
  tenantUrl: string;
  token: string;
  useV2Flow: boolean;
}

/**
 * `POST {api}/actions/runner-registration` with `RemoteAuth {token}`: turns the registration (or
 * removal) token into a credential for the runner's service. Tried 3 times, 1–5 s apart, except
 * when GitHub answers 404 (a wrong or used token, or a wrong URL), as the official runner does.
 */
async function tenantCredential(
  scope: GitHubScope,
  token: string,
  event: "register" | "remove",
  signal?: AbortSignal,
): Promise<TenantCredential> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await httpRequest({
        method: "POST",
        url: `${scope.api}/actions/runner-registration`,
        headers: { Authorization: `RemoteAuth ${token}`, Accept: "application/json" },
        json: { url: scope.url, runner_event: event },
        timeoutMs: 60_000,
        ...(signal ? { signal } : {}),
      });
      const body = jsonOf(res);
      const schema = str(prop(body, "token_schema"));
      const tenantUrl = str(prop(body, "url"));
      const tenantToken = str(prop(body, "token"));
      if (schema !== "OAuthAccessToken" || !tenantUrl || !tenantToken) {
        throw new GitHubRunnerError(
          "protocol_error",
          `GitHub answered the runner registration with token_schema "${schema ?? ""}"; only OAuthAccessToken is supported`,
        );
      }
      return { tenantUrl, token: tenantToken, useV2Flow: bool(prop(body, "use_v2_flow")) ?? false };
    } catch (error) {
      const status = error instanceof HttpStatusError ? error.status : 0;
      if (status === 404 || status === 401 || status === 403) {
        throw new GitHubRunnerError(
          "registration_refused",
          `GitHub refused the ${event === "register" ? "registration" : "removal"} token for ${scope.url} (${status}${error instanceof HttpStatusError && error.detail ? `: ${error.detail}` : ""})`,
          `a registration token is valid for one hour (GitHub takes it again within that hour, then refuses it): take a new one from ${scope.url}${scope.kind === "repository" ? "/settings/actions/runners/new" : " → Settings → Actions → Runners → New runner"}, and check the URL`,
          { cause: error },
        );
      }
      if (attempt >= 3 || !(error instanceof HttpStatusError || error instanceof HttpUnreachableError)) {
        if (error instanceof HttpUnreachableError) {
          throw new GitHubRunnerError(
            "github_unreachable",
            `${scope.api} does not answer (${error.message})`,
            "check the URL and this machine's network",
            { cause: error },
          );
        }
        throw error;
      }
      await sleep(1000 + Math.random() * 4000, signal);
    }
  }
}

/** The labels GitHub sees: self-hosted, the OS and the architecture (system), then ours (user). */
function agentLabels(names: readonly string[]) {
  return [
    ...["self-hosted", RUNNER_OS, RUNNER_ARCH].map((name) => ({ id: 0, name, type: "system" })),
    ...names.map((name) => ({ id: 0, name, type: "user" })),
  ];
}

/** A property of a TaskAgent's `properties`: bare, or .NET's {"$type", "$value"} wrapper. */
function agentProperty(agent: unknown, name: string): unknown {
  const value = prop(prop(agent, "properties"), name);
  return isRecord(value) && "$value" in value ? value.$value : value;
}

/**
 * Checks the labels: a GitHub job message does not say which of the runner's labels the job
 * asked for, so every label of one registration must run in the same fleet label.
 */
export function checkLabels(raw: readonly string[]) {
  const labels = raw.map(parseLabel);
  if (labels.length === 0) {
    throw new GitHubRunnerError("invalid_settings", "no labels given", "give --labels, e.g. omnios:vm:omnios-r151054");
  }
  const fleet = [...new Set(labels.filter((l) => !isGitHubDefaultLabel(l)).map((l) => l.fleetLabel))];
  if (fleet.length === 0) {
    throw new GitHubRunnerError(
      "invalid_settings",
      `the labels (${raw.join(", ")}) name no fleet label`,
      "add one, e.g. omnios:vm:omnios-r151054",
    );
  }
  if (fleet.length > 1) {
    throw new GitHubRunnerError(
      "invalid_settings",
      `the labels run in ${fleet.length} fleet labels (${fleet.join(", ")}), but GitHub does not tell a runner which of its labels a job asked for`,
      "register one runner per fleet label, e.g. one with --labels omnios:vm:omnios-r151054 and another with --labels debian:vm:debian-12",
    );
  }
  return labels;
}

/** The fleet label a runner's jobs go to (checkLabels made sure there is exactly one). */
export function fleetLabelOf(labels: readonly RunnerLabel[]): string {
  return labels.find((l) => !isGitHubDefaultLabel(l))?.fleetLabel ?? "";
}

/**
 * What to warn about a JIT runner's labels: GitHub gives it only the labels of generate-jitconfig
 * (a registered runner gets self-hosted and the OS and architecture added), and workflows ask for
 * `runs-on: [self-hosted, …]`. Without self-hosted such a job never matches and waits forever.
 */
export function jitLabelWarning(labels: readonly RunnerLabel[]): string | undefined {
  if (labels.some((l) => l.name.toLowerCase() === "self-hosted")) return undefined;
  return `the JIT runner's labels (${labels.map((l) => l.name).join(", ")}) lack self-hosted: a job with runs-on: [self-hosted, …] never reaches it; generate the JIT config with "labels": ["self-hosted", ${labels.map((l) => `"${l.name}"`).join(", ")}] and pass --labels self-hosted,${labels.map((l) => l.raw).join(",")}`;
}

// Labels GitHub gives a registered self-hosted runner itself; written plainly (no :vm:) they are
// matched by runs-on but name no fleet label.
const GITHUB_DEFAULT_LABELS = new Set(["self-hosted", "linux", "x64", "arm64", "arm", "windows", "macos"]);

function isGitHubDefaultLabel(label: RunnerLabel): boolean {
  return label.raw === label.name && GITHUB_DEFAULT_LABELS.has(label.name.toLowerCase());
}

async function registerClassic(
  opts: RegisterOptions,
  scope: GitHubScope,
  tenant: TenantCredential,
  key: ReturnType<typeof generateRunnerKey>,
  names: string[],
): Promise<{ settings: Omit<RunnerSettings, "solsticeLabels">; credentials: RunnerCredentials }> {
  const vss = new VssClient(tenant.tenantUrl, fixedBearer(tenant.token));
  const signal = opts.signal;
  const pools = list(
    prop(
      jsonOf(
        await vss.call({
          method: "GET",
          location: LOCATIONS.pools,
          apiVersion: "5.1-preview.1",
          ...(signal ? { signal } : {}),
        }),
      ),
      "value",
    ),
  );
  const pool = opts.runnerGroup
    ? pools.find(
        (p) => !bool(prop(p, "isHosted")) && str(prop(p, "name"))?.toLowerCase() === opts.runnerGroup?.toLowerCase(),
      )
    : pools.find((p) => bool(prop(p, "isInternal")));
  const poolId = num(prop(pool, "id"));
  if (poolId === undefined) {
    const names = pools.filter((p) => !bool(prop(p, "isHosted"))).map((p) => str(prop(p, "name")));
    throw new GitHubRunnerError(
      "registration_refused",
      opts.runnerGroup ? `there is no runner group "${opts.runnerGroup}"` : "GitHub offers no default runner group",
      `groups: ${names.join(", ") || "none"}; pass one with --runner-group`,
    );
  }
  const existing = list(
    prop(
      jsonOf(
        await vss.call({
          method: "GET",
          location: LOCATIONS.agents,
          apiVersion: "6.0-preview.2",
          route: { poolId },
          query: { agentName: opts.name },
          ...(signal ? { signal } : {}),
        }),
      ),
      "value",
    ),
  );
  const existingId = existingRunnerId(existing, opts, scope.url);
  const agent = {
    ...(existingId !== undefined ? { id: existingId } : {}),
    name: opts.name,
    version: RUNNER_VERSION,
    osDescription: `${RUNNER_OS} ${release()} (Solstice CI)`,
    maxParallelism: 1,
    ephemeral: opts.ephemeral ?? false,
    disableUpdate: true,
    authorization: { publicKey: publicKeyParts(key) },
    labels: agentLabels(names),
  };
  const created = jsonOf(
    await vss.call({
      method: existingId !== undefined ? "PUT" : "POST",
      location: LOCATIONS.agents,
      apiVersion: "6.0-preview.2",
      route: { poolId, agentId: existingId },
      json: agent,
      ...(signal ? { signal } : {}),
    }),
  );
  const agentId = num(prop(created, "id"));
  const authorization = prop(created, "authorization");
  const clientId = str(prop(authorization, "clientId"));
  const authorizationUrl = str(prop(authorization, "authorizationUrl"));
  if (agentId === undefined || !clientId || !authorizationUrl) {
    throw new GitHubRunnerError("protocol_error", "GitHub created the runner but sent no id or authorization for it");
  }
  const serverUrlV2 = str(agentProperty(created, "ServerUrlV2")) ?? "";
  return {
    settings: {
      agentId,
      agentName: opts.name,
      poolId,
      poolName: str(prop(pool, "name")) ?? "",
      serverUrl: tenant.tenantUrl,
      gitHubUrl: scope.url,
      workFolder: "_work",
      useV2Flow: (bool(agentProperty(created, "UseV2Flow")) ?? false) && serverUrlV2 !== "",
      serverUrlV2,
      ephemeral: opts.ephemeral ?? false,
      disableUpdate: true,
    },
    credentials: {
      clientId,
      authorizationUrl,
      // The official runner records true when GitHub does not send the property.
      requireFipsCryptography: bool(agentProperty(created, "RequireFipsCryptography")) ?? true,
    },
  };
}

async function registerRunnerAdmin(
  opts: RegisterOptions,
  scope: GitHubScope,
  tenant: TenantCredential,
  key: ReturnType<typeof generateRunnerKey>,
  names: string[],
): Promise<{ settings: Omit<RunnerSettings, "solsticeLabels">; credentials: RunnerCredentials }> {
  const auth = { Authorization: `RemoteAuth ${opts.token}`, Accept: "application/json" };
  const signal = opts.signal ? { signal: opts.signal } : {};
  const groups = list(
    prop(
      jsonOf(
        await httpRequest({
          method: "GET",
          url: `${scope.api}/${scope.path}/actions/runner-groups`,
          headers: auth,
          ...signal,
        }),
      ),
      "runner_groups",
    ),
  );
  const group = opts.runnerGroup
    ? groups.find((g) => str(prop(g, "name"))?.toLowerCase() === opts.runnerGroup?.toLowerCase())
    : groups.find((g) => bool(prop(g, "default")));
  const groupId = num(prop(group, "id"));
  if (groupId === undefined) {
    throw new GitHubRunnerError(
      "registration_refused",
      opts.runnerGroup ? `there is no runner group "${opts.runnerGroup}"` : "GitHub offers no default runner group",
      `groups: ${groups.map((g) => str(prop(g, "name"))).join(", ") || "none"}; pass one with --runner-group`,
    );
  }
  const existing = list(
    prop(
      jsonOf(
        await httpRequest({
          method: "GET",
          url: `${scope.api}/${scope.path}/actions/runners?name=${encodeURIComponent(opts.name)}`,
          headers: auth,
          ...signal,
        }),
      ),
      "runners",
    ),
  );
  const existingId = existingRunnerId(existing, opts, scope.url);
  const created = jsonOf(
    await httpRequest({
      method: "POST",
      url: `${scope.api}/actions/runners/register`,
      headers: auth,
      json: {
        url: scope.url,
        group_id: groupId,
        name: opts.name,
        version: RUNNER_VERSION,
        updates_disabled: true,
        ephemeral: opts.ephemeral ?? false,
        labels: agentLabels(names),
        public_key: publicKeyXml(key),
        ...(existingId !== undefined ? { runner_id: existingId, replace: true } : {}),
      },
      ...signal,
    }),
  );
  const id = num(prop(created, "id"));
  const authorization = prop(created, "authorization");
  const clientId = str(prop(authorization, "client_id"));
  const authorizationUrl =
    str(prop(authorization, "legacy_authorization_url")) || str(prop(authorization, "authorization_url"));
  const serverUrl = str(prop(authorization, "server_url"));
  if (id === undefined || !clientId || !authorizationUrl || !serverUrl) {
    throw new GitHubRunnerError("protocol_error", "GitHub registered the runner but sent no id, client or broker URL");
  }
  return {
    settings: {
      agentId: id,
      agentName: opts.name,
      poolId: groupId,
      poolName: str(prop(group, "name")) ?? "",
      serverUrl: tenant.tenantUrl,
      gitHubUrl: scope.url,
      workFolder: "_work",
      useV2Flow: true,
      serverUrlV2: serverUrl,
      ephemeral: opts.ephemeral ?? false,
      disableUpdate: true,
    },
    credentials: { clientId, authorizationUrl, requireFipsCryptography: true },
  };
}

/**
 * Registers Solstice as a self-hosted runner the way the official runner does (classic: an
 * agent in the pipelines service's pool; runner-admin: GitHub REST), proves the new credential
 * once (an OAuth exchange and, for classic, one call with it), and writes the three files (mode 0600).
 */
export async function registerRunner(opts: RegisterOptions): Promise<RunnerRegistration> {
  if (await isConfigured(opts.dir)) {
    throw new GitHubRunnerError(
      "already_configured",
      `${opts.dir} already holds a runner registration`,
      "remove it first: solstice-github-runner remove --token <removal token>",
    );
  }
  const labels = checkLabels(opts.labels);
  const names = labels.map((l) => l.name);
  const scope = parseGitHubUrl(opts.url);
  const tenant = await tenantCredential(scope, opts.token, "register", opts.signal);
  const key = generateRunnerKey();
  const made = tenant.useV2Flow
    ? await registerRunnerAdmin(opts, scope, tenant, key, names)
    : await registerClassic(opts, scope, tenant, key, names);
  const registration: RunnerRegistration = {
    settings: { ...made.settings, solsticeLabels: labels.map((l) => l.raw) },
    credentials: made.credentials,
    key,
  };
  // As the official runner: the credential works before anything is written.
  const tokens = new RunnerTokenSource(made.credentials, key, opts.log);
  await tokens.token(opts.signal);
  if (!made.settings.useV2Flow) {
    await new VssClient(tenant.tenantUrl, tokens).call({
      method: "GET",
      location: LOCATIONS.pools,
      apiVersion: "5.1-preview.1",
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  }
  await writeRegistration(opts.dir, registration);
  opts.log.info(
    {
      runner: opts.name,
      id: made.settings.agentId,
      url: scope.url,
      flow: tenant.useV2Flow ? "runner-admin" : "classic",
      host: hostname(),
    },
    "runner registered",
  );
  return registration;
}

export interface RemoveOptions {
  dir: string;
  /** The removal token GitHub shows (or a registration token, which GitHub also accepts). */
  token: string;
  log: Logger;
  signal?: AbortSignal;
}

/** Deletes the runner in GitHub, then its local files. A runner GitHub no longer has is just forgotten. */
export async function removeRunner(opts: RemoveOptions): Promise<void> {
  const { settings } = await readRegistration(opts.dir);
  const scope = parseGitHubUrl(settings.gitHubUrl);
  const tenant = await tenantCredential(scope, opts.token, "remove", opts.signal);
  const signal = opts.signal ? { signal: opts.signal } : {};
  const backoff = new Backoff(1000, 5000);
  for (let attempt = 1; ; attempt++) {
    try {
      if (tenant.useV2Flow) {
        await httpRequest({
          method: "DELETE",
          url: `${scope.api}/${scope.path}/actions/runners/${settings.agentId}`,
          headers: { Authorization: `RemoteAuth ${opts.token}`, Accept: "application/json" },
          ...signal,
        });
      } else {
        await new VssClient(tenant.tenantUrl, fixedBearer(tenant.token)).call({
          method: "DELETE",
          location: LOCATIONS.agents,
          apiVersion: "6.0-preview.2",
          route: { poolId: settings.poolId, agentId: settings.agentId },
          ...signal,
        });
      }
      break;
    } catch (error) {
      if (error instanceof HttpStatusError && error.status === 404) {
        opts.log.warn({ id: settings.agentId }, "GitHub no longer has this runner; removing the local files");
        break;
      }
      if (attempt >= 3) throw error;
      await sleep(backoff.next(), opts.signal);
    }
  }
  await removeRegistration(opts.dir);
  opts.log.info({ runner: settings.agentName, id: settings.agentId }, "runner removed");
}

/** The id of the runner of the same name that GitHub listed, if `--replace` allows taking it over. */
function existingRunnerId(
  listed: readonly unknown[],
  opts: { name: string; replace?: boolean },
  scopeUrl: string,
): number | undefined {
  const id = num(prop(listed[0], "id"));
  if (id !== undefined && !opts.replace) {
    throw new GitHubRunnerError(
      "already_configured",
      `a runner named "${opts.name}" already exists in ${scopeUrl}`,
      "pick another --name, or pass --replace to take it over",
    );
  }
  return id;
}
