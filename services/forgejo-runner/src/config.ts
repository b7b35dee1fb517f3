import { z } from "zod";

const ms = (min: number, fallback: number) => z.coerce.number().int().min(min).default(fallback);

/** The daemon's settings, from SOLSTICE_* variables (see loadConfig) or flags. */
export const forgejoRunnerConfigSchema = z.object({
  /** The `.runner` file written by `register` or `create-runner-file`. Default .runner. */
  runnerFile: z.string().min(1).default(".runner"),
  /** AMQP URL of the broker. Default amqp://guest:guest@127.0.0.1:5672. */
  amqpUrl: z.string().min(1).default("amqp://guest:guest@127.0.0.1:5672"),
  /** Prefix of every exchange and queue; the same as the orchestrators'. Default solstice. */
  namespace: z.string().min(1).default("solstice"),
  /** Tasks taken from the forge at once. Default 1, as the official runners. */
  capacity: z.coerce.number().int().min(1).max(1000).default(1),
  /** Pause between FetchTask calls. Default 2000, as the Forgejo runner. */
  fetchIntervalMs: ms(50, 2000),
  /** Deadline of one FetchTask call. Default 5000, as the Forgejo runner. */
  fetchTimeoutMs: ms(100, 5000),
  /** Deadline of every other call to the forge. Default 60000, as the Forgejo runner's client. */
  callTimeoutMs: ms(100, 60_000),
  /** How often logs and state go to the forge while a task runs. Default 1000, as the Forgejo runner. */
  reportIntervalMs: ms(50, 1000),
  /** Longest wait between retries of a failing forge (backoff doubles up to it, ±20 % jitter). Default 60000. */
  maxBackoffMs: ms(100, 60_000),
  /** The lease rule: a running attempt that sends no event this long is cancelled and retried. Default 60000. */
  leaseMs: ms(1000, 60_000),
  /** Attempts of a job in all, the first included, before a lost job fails the task. Default 3. */
  maxAttempts: z.coerce.number().int().min(1).max(20).default(3),
  /** How long a job may wait for a host to take it before the task fails. Default 600000. */
  queueTimeoutMs: ms(1000, 600_000),
  /** After a cancel, how long to wait for the job's own end before reporting it cancelled. Default 60000. */
  cancelGraceMs: ms(100, 60_000),
  /** Port of /healthz, /readyz and /metrics (default 9465, next to the orchestrator's 9464; 0 picks a free port). */
  metricsPort: z.coerce.number().int().min(0).max(65_535).default(9465),
  /** Address the metrics port listens on (default 127.0.0.1; 0.0.0.0 in a container). */
  metricsHost: z.string().min(1).default("127.0.0.1"),
  /** The owner name of this runner's jobs (its event queue); default forgejo-<runner uuid>. */
  owner: z.string().min(1).optional(),
});
export type ForgejoRunnerConfig = z.infer<typeof forgejoRunnerConfigSchema>;
