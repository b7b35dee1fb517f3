import type { KeyObject } from "node:crypto";
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { bool, isRecord, list, num, prop, str } from "../client/wire-json.ts";
import { GitHubRunnerError } from "../errors.ts";
import { fromRsaParams, toRsaParams } from "./rsa-key.ts";

/** The official runner's file names, so a registration moves between it and Solstice as is. */
export const SETTINGS_FILE = ".runner";
export const CREDENTIALS_FILE = ".credentials";
export const RSA_PARAMS_FILE = ".credentials_rsaparams";

/** `.runner`: where the runner is registered. */
export interface RunnerSettings {
  agentId: number;
  agentName: string;
  poolId: number;
  poolName: string;
  /** The tenant (pipelines service) URL; empty for a runner made through the runner-admin flow. */
  serverUrl: string;
  gitHubUrl: string;
  workFolder: string;
  /** Listen on the broker (serverUrlV2) instead of the pipelines service. */
  useV2Flow: boolean;
  serverUrlV2: string;
  ephemeral: boolean;
  disableUpdate: boolean;
  /** Solstice's own: the labels as registered, `name[:vm:<fleet label>]` (GitHub knows only the names). */
  solsticeLabels: string[];
}

/** `.credentials`: how the runner proves who it is (OAuth client credentials with its RSA key). */
export interface RunnerCredentials {
  clientId: string;
  authorizationUrl: string;
  /** PS256 instead of RS256 for the client assertion. The official runner records true when GitHub says nothing. */
  requireFipsCryptography: boolean;
}

export interface RunnerRegistration {
  settings: RunnerSettings;
  credentials: RunnerCredentials;
  key: KeyObject;
}

export function settingsPaths(dir: string) {
  return {
    settings: path.join(dir, SETTINGS_FILE),
    credentials: path.join(dir, CREDENTIALS_FILE),
    rsaParams: path.join(dir, RSA_PARAMS_FILE),
  };
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new GitHubRunnerError(
      code === "ENOENT" ? "not_configured" : "invalid_settings",
      `${file} cannot be read (${code ?? "error"})`,
      "register first: solstice-github-runner register --url <repository or organization URL> --token <token>",
    );
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, "")) as unknown;
  } catch {
    throw new GitHubRunnerError("invalid_settings", `${file} is not JSON`, "register the runner again");
  }
}

/** Reads `.runner` in either casing and with numbers or booleans as strings, as JIT configs carry them. */
export function parseSettings(json: unknown, file = SETTINGS_FILE): RunnerSettings {
  const need = <T>(value: T | undefined, name: string): T => {
    if (value === undefined)
      throw new GitHubRunnerError("invalid_settings", `${file} lacks "${name}"`, "register again");
    return value;
  };
  return {
    agentId: need(num(prop(json, "agentId")), "agentId"),
    agentName: str(prop(json, "agentName")) ?? "",
    poolId: num(prop(json, "poolId")) ?? 0,
    poolName: str(prop(json, "poolName")) ?? "",
    serverUrl: str(prop(json, "serverUrl")) ?? "",
    gitHubUrl: str(prop(json, "gitHubUrl")) ?? "",
    workFolder: str(prop(json, "workFolder")) ?? "_work",
    useV2Flow: bool(prop(json, "useV2Flow")) ?? false,
    serverUrlV2: str(prop(json, "serverUrlV2")) ?? "",
    ephemeral: bool(prop(json, "ephemeral")) ?? false,
    disableUpdate: bool(prop(json, "disableUpdate")) ?? false,
    solsticeLabels: list(prop(json, "solsticeLabels")).filter((l): l is string => typeof l === "string"),
  };
}

export function parseCredentials(json: unknown, file = CREDENTIALS_FILE): RunnerCredentials {
  const scheme = str(prop(json, "scheme"));
  const data = prop(json, "data");
  if (scheme !== "OAuth" || !isRecord(data)) {
    throw new GitHubRunnerError("invalid_settings", `${file} is not an OAuth credential`, "register the runner again");
  }
  const clientId = str(prop(data, "clientId"));
  const authorizationUrl = str(prop(data, "authorizationUrl"));
  if (!clientId || !authorizationUrl) {
    throw new GitHubRunnerError("invalid_settings", `${file} lacks clientId or authorizationUrl`, "register again");
  }
  return { clientId, authorizationUrl, requireFipsCryptography: bool(prop(data, "requireFipsCryptography")) ?? true };
}

export async function readRegistration(dir: string): Promise<RunnerRegistration> {
  const files = settingsPaths(dir);
  const settings = parseSettings(await readJson(files.settings), files.settings);
  const credentials = parseCredentials(await readJson(files.credentials), files.credentials);
  const key = fromRsaParams(await readJson(files.rsaParams), files.rsaParams);
  return { settings, credentials, key };
}

export async function isConfigured(dir: string): Promise<boolean> {
  return stat(settingsPaths(dir).settings).then(
    () => true,
    () => false,
  );
}

/** Writes atomically with mode 0600 (the credentials hold the runner's private key). */
export async function writePrivateFile(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** Writes the three files as the official runner names them; the key never goes anywhere else. */
export async function writeRegistration(dir: string, reg: RunnerRegistration): Promise<void> {
  const files = settingsPaths(dir);
  const { solsticeLabels, ...official } = reg.settings;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivateFile(files.rsaParams, `${JSON.stringify(toRsaParams(reg.key))}\n`);
  await writePrivateFile(
    files.credentials,
    `${JSON.stringify(
      {
        scheme: "OAuth",
        data: {
          clientId: reg.credentials.clientId,
          authorizationUrl: reg.credentials.authorizationUrl,
          requireFipsCryptography: reg.credentials.requireFipsCryptography ? "True" : "False",
        },
      },
      null,
      2,
    )}\n`,
  );
  await writePrivateFile(files.settings, `${JSON.stringify({ ...official, solsticeLabels }, null, 2)}\n`);
}

export async function removeRegistration(dir: string): Promise<void> {
  const files = settingsPaths(dir);
  for (const file of [files.settings, files.credentials, files.rsaParams]) await rm(file, { force: true });
}
