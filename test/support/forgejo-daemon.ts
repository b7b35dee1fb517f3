import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Bus } from "@solstice/bus";
import { type Daemon, forgejoRunnerConfigSchema, registerRunner, startDaemon } from "@solstice/forgejo-runner";
import type { FleetKeyring } from "@solstice/protocol";
import type { Logger } from "pino";
import type { FakeForgejo } from "../fakes/forgejo/fake-forgejo.ts";

export interface RunningRunner {
  readonly daemon: Daemon;
  /** Stops the daemon (waiting up to `graceMs` for its tasks) and removes its .runner file. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * A forgejo-runner registered with the fake forge (label `solstice-tiny:vm:tiny`) and its daemon
 * started on `bus`, as an admin would run it; `config` holds the SOLSTICE_* settings under test.
 */
export async function startRegisteredRunner(opts: {
  forge: FakeForgejo;
  name: string;
  bus: Bus;
  namespace: string;
  keyring: FleetKeyring;
  log: Logger;
  config?: Record<string, unknown>;
}): Promise<RunningRunner> {
  const token = `registration-token-${opts.name}`;
  opts.forge.addRegistrationToken(token);
  const dir = await mkdtemp(path.join(tmpdir(), `solstice-forgejo-${opts.name}-`));
  try {
    const runner = await registerRunner({
      instance: opts.forge.url,
      token,
      name: opts.name,
      labels: ["solstice-tiny:vm:tiny"],
      file: path.join(dir, ".runner"),
    });
    const daemon = await startDaemon({
      config: forgejoRunnerConfigSchema.parse({ namespace: opts.namespace, ...opts.config }),
      runner,
      bus: opts.bus,
      log: opts.log,
      keyring: opts.keyring,
    });
    return {
      daemon,
      async stop(graceMs = 5000) {
        await daemon.stop(graceMs);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
