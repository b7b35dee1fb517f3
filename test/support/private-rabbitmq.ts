import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { freeLocalPort } from "@solstice/ssh";

const run = promisify(execFile);
// The node's own scripts: the /usr/sbin wrappers switch to the rabbitmq user and its home, whose
// Erlang cookie and data are the machine's node's.
const RABBITMQ_BIN = process.env.SOLSTICE_TEST_RABBITMQ_BIN ?? "/usr/lib/rabbitmq/bin";

/**
 * A RabbitMQ node of the test's own, on free ports, with its data, logs and Erlang cookie in a
 * temporary directory. Fault tests stop and start it (`stop_app`/`start_app`) without touching the
 * machine's broker, which other tests share; so such tests need not run alone.
 */
export interface PrivateRabbitMq {
  readonly url: string;
  readonly port: number;
  /** Stops the broker application (every connection is closed), waits `downMs`, starts it again. */
  restart(downMs: number): Promise<{ downMs: number }>;
  stopApp(): Promise<void>;
  startApp(): Promise<void>;
  close(): Promise<void>;
}

export async function startPrivateRabbitMq(): Promise<PrivateRabbitMq> {
  const dir = await mkdtemp(path.join(tmpdir(), "solstice-rabbitmq-"));
  const port = await freeLocalPort();
  const node = `solstice-test-${randomUUID().slice(0, 8)}@localhost`;
  await mkdir(path.join(dir, "mnesia"));
  await mkdir(path.join(dir, "log"));
  await writeFile(path.join(dir, "enabled_plugins"), "[].\n");
  const env = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(await freeLocalPort()),
    RABBITMQ_MNESIA_BASE: path.join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: path.join(dir, "log"),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, "enabled_plugins"),
    RABBITMQ_PID_FILE: path.join(dir, "pid"),
    RABBITMQ_CONFIG_FILE: path.join(dir, "rabbitmq"),
  };
  const ctl = (...args: string[]) =>
    run(path.join(RABBITMQ_BIN, "rabbitmqctl"), ["-n", node, ...args], { env, timeout: 120_000 });
  const server: ChildProcess = spawn(path.join(RABBITMQ_BIN, "rabbitmq-server"), [], {
    env,
    cwd: dir,
    stdio: "ignore",
  });
  const exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));
  let serverGone = false;
  void exited.then(() => {
    serverGone = true;
  });
  try {
    // await_startup fails at once until the node has registered with epmd: ask again until then.
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        await ctl("await_startup", "--timeout", "120");
        break;
      } catch (error) {
        if (serverGone || Date.now() > deadline) throw error;
        await sleep(500);
      }
    }
  } catch (error) {
    server.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const stopApp = async () => void (await ctl("stop_app"));
  const startApp = async () => {
    await ctl("start_app");
    await ctl("await_startup");
  };
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    port,
    stopApp,
    startApp,
    async restart(downMs) {
      const stoppedAt = Date.now();
      await stopApp();
      await sleep(Math.max(0, downMs - (Date.now() - stoppedAt)));
      await startApp();
      return { downMs: Date.now() - stoppedAt };
    },
    async close() {
      await ctl("stop").catch(() => server.kill("SIGKILL"));
      await Promise.race([exited, sleep(15_000).then(() => server.kill("SIGKILL"))]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
