import { ConnectError } from "@connectrpc/connect";
import { parseLabel, sleep } from "@solstice/forge-relay";
import { createForgeClient } from "./forge-client.ts";
import { type RunnerFile, writeRunnerFile } from "./runner-file.ts";
import { RUNNER_VERSION } from "./version.ts";

export interface RegisterOptions {
  /** The instance URL, e.g. https://forgejo.example.com. */
  instance: string;
  /** The registration token from the forge's runner settings. */
  token: string;
  name: string;
  /** Full labels, `name[:vm:fleet-label]`; only the names reach the forge. */
  labels: readonly string[];
  /** Where the `.runner` file goes. */
  file: string;
  /** How long to wait for the forge to answer Ping. Default 60000. */
  connectTimeoutMs?: number;
  /** Aborting stops the wait for the forge at once (Ctrl-C). */
  signal?: AbortSignal;
  /** Told once, when the forge does not answer at first: what registration is waiting for. */
  onWaiting?: (text: string) => void;
}

export class RegisterError extends Error {
  constructor(
    readonly code: "forge_unreachable" | "registration_refused" | "invalid_secret",
    message: string,
    readonly hint: string,
  ) {
    super(`${message}; ${hint}`);
    this.name = "RegisterError";
  }
}

/** Pings the forge until it answers, registers, and writes the `.runner` file (mode 0600). */
export async function registerRunner(opts: RegisterOptions): Promise<RunnerFile> {
  const labels = opts.labels.map(parseLabel);
  const client = createForgeClient({ address: opts.instance, callTimeoutMs: 10_000 });
  const connectTimeoutMs = opts.connectTimeoutMs ?? 60_000;
  const deadline = Date.now() + connectTimeoutMs;
  let told = false;
  // As the official runners: ping once a second until the forge answers.
  for (;;) {
    try {
      await client.ping.ping({ data: opts.name }, opts.signal ? { signal: opts.signal } : {});
      break;
    } catch (error) {
      if (!told && !opts.signal?.aborted) {
        told = true;
        opts.onWaiting?.(
          `waiting for ${opts.instance} to answer the runner protocol (${ConnectError.from(error).rawMessage}); trying for up to ${Math.round(connectTimeoutMs / 1000)} s, Ctrl-C stops`,
        );
      }
      if (Date.now() > deadline || opts.signal?.aborted) {
        throw new RegisterError(
          "forge_unreachable",
          `${opts.instance} does not answer the runner protocol (${ConnectError.from(error).message})`,
          "check the instance URL (the address of the forge's web UI) and that Actions are enabled",
        );
      }
      await sleep(1000, opts.signal);
    }
  }
  let runner: Awaited<ReturnType<typeof client.runner.register>>["runner"];
  try {
    const names = labels.map((l) => l.name);
    ({ runner } = await client.runner.register({
      name: opts.name,
      token: opts.token,
      version: RUNNER_VERSION,
      labels: names,
      agentLabels: names,
    }));
  } catch (error) {
    throw new RegisterError(
      "registration_refused",
      `${opts.instance} refused the registration (${ConnectError.from(error).rawMessage})`,
      "take a fresh registration token from the forge's Actions → Runners settings",
    );
  }
  if (!runner) {
    throw new RegisterError("registration_refused", "the forge answered without a runner", "try again");
  }
  const file: RunnerFile = {
    id: Number(runner.id),
    uuid: runner.uuid,
    name: runner.name || opts.name,
    token: runner.token,
    address: opts.instance.replace(/\/+$/, ""),
    labels: labels.map((l) => l.raw),
  };
  await writeRunnerFile(opts.file, file);
  return file;
}
