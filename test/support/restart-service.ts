import { execFile } from "node:child_process";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const run = promisify(execFile);
// Root on the CI machine; elsewhere the same commands through sudo, as scripts/services.sh does.
const privileged = (command: string, args: string[]) =>
  process.getuid?.() === 0 ? run(command, args) : run("sudo", [command, ...args]);

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function waitForPort(port: number, open: boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await portOpen(port)) !== open) {
    if (Date.now() > deadline) throw new Error(`port ${port} did not ${open ? "open" : "close"} in ${timeoutMs} ms`);
    await sleep(200);
  }
}

/**
 * Stops the machine's RabbitMQ node and starts it again (its durable queues and persistent
 * messages survive, as in production). Resolves with how long the broker was unreachable.
 * Only for tests that run alone: every other user of the broker loses its connection.
 */
export async function restartRabbitMq(): Promise<{ downMs: number }> {
  const stoppedAt = Date.now();
  await privileged("rabbitmqctl", ["stop"]);
  await waitForPort(5672, false, 60_000);
  await privileged("rabbitmq-server", ["-detached"]);
  await waitForPort(5672, true, 120_000);
  await privileged("rabbitmqctl", ["await_startup"]);
  return { downMs: Date.now() - stoppedAt };
}

/** Restarts the machine's PostgreSQL cluster; resolves with how long it was unreachable. */
export async function restartPostgres(): Promise<{ downMs: number }> {
  const { stdout } = await run("sh", ["-c", "ls /etc/postgresql | sort -V | tail -n 1"]);
  const stoppedAt = Date.now();
  await privileged("pg_ctlcluster", ["--skip-systemctl-redirect", stdout.trim(), "main", "restart"]);
  await waitForPort(5432, true, 60_000);
  return { downMs: Date.now() - stoppedAt };
}
