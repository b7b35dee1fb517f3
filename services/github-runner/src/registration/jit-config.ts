import { isRecord, prop } from "../client/wire-json.ts";
import { GitHubRunnerError } from "../errors.ts";
import { fromRsaParams } from "./rsa-key.ts";
import {
  CREDENTIALS_FILE,
  parseCredentials,
  parseSettings,
  RSA_PARAMS_FILE,
  type RunnerRegistration,
  SETTINGS_FILE,
} from "./runner-files.ts";

/**
 * Reads GitHub's `encoded_jit_config`: base64 of a JSON object mapping each of the official
 * runner's file names to base64 of that file. The files are parsed tolerantly (PascalCase keys,
 * numbers and booleans as strings), as GitHub writes them for .NET.
 */
export function decodeJitConfig(encoded: string, labels: readonly string[]): RunnerRegistration {
  const bad = (why: string) =>
    new GitHubRunnerError(
      "invalid_settings",
      `the --jitconfig value ${why}`,
      "pass encoded_jit_config exactly as generate-jitconfig returned it",
    );
  let files: unknown;
  try {
    files = JSON.parse(Buffer.from(encoded.trim(), "base64").toString("utf8"));
  } catch {
    throw bad("is not base64 of a JSON object");
  }
  if (!isRecord(files)) throw bad("is not base64 of a JSON object");
  const file = (name: string): unknown => {
    const value = prop(files, name);
    if (typeof value !== "string") throw bad(`has no ${name} file`);
    try {
      return JSON.parse(
        Buffer.from(value, "base64")
          .toString("utf8")
          .replace(/^\uFEFF/, ""),
      ) as unknown;
    } catch {
      throw bad(`has a ${name} that is not JSON`);
    }
  };
  const settings = parseSettings(file(SETTINGS_FILE), `jitconfig ${SETTINGS_FILE}`);
  // A JIT runner is always ephemeral: GitHub deletes it after its one job.
  return {
    settings: { ...settings, ephemeral: true, solsticeLabels: [...labels] },
    credentials: parseCredentials(file(CREDENTIALS_FILE), `jitconfig ${CREDENTIALS_FILE}`),
    key: fromRsaParams(file(RSA_PARAMS_FILE), `jitconfig ${RSA_PARAMS_FILE}`),
  };
}
