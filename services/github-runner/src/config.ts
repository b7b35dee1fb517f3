import { z } from "zod";

const ms = (fallback: number) => z.coerce.number().int().positive().default(fallback);
/** An optional setting; compose passes unset variables as "", which means unset too. */
const optional = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === "" ? undefined : v), schema.optional());

/** The daemon's settings, from SOLSTICE_* variables (see loadConfig) or flags. */
export const githubRunnerConfigSchema = z.object({
  /** Where .runner, .credentials and .credentials_rsaparams are (default: the working directory). */
  runnerDir: z.string().min(1).default("."),
  amqpUrl: z.string().min(1).default("amqp://guest:guest@127.0.0.1:5672"),
  namespace: z.string().min(1).default("solstice"),
  /** The owner name of this runner's jobs (its event queue); default github-<instance hash>-<runner id>. */
  owner: optional(z.string().min(1)),
  /** A just-in-time runner's encoded_jit_config: run one job with it, writing no files. */
  jitconfig: optional(z.string().min(1)),
  /** Labels (`name[:vm:<fleet label>]`, comma-separated) of a JIT runner, or of the registration made from githubUrl. */
  labels: optional(z.string().min(1)),
  /** With registrationToken: register at start-up when runnerDir holds no registration (containers). */
  githubUrl: optional(z.string().url()),
  registrationToken: optional(z.string().min(1)),
  /** The name of the registration made from githubUrl (default: the host name). */
  runnerName: optional(z.string().min(1)),
  /** The runner group of the registration made from githubUrl (default: the default group). */
  runnerGroup: optional(z.string().min(1)),
  /** Deadline of one message long-poll. Default 60000, the official runner's. */
  pollTimeoutMs: ms(60_000),
  /** How often a job's timeline and live lines go to GitHub. Default 500. */
  reportIntervalMs: ms(500),
  /** How often a running job's lock is renewed. Default 60000. */
  renewIntervalMs: ms(60_000),
  /** The lease rule: a running attempt silent this long is lost and retried. Default 60000. */
  leaseMs: ms(60_000),
  /** Attempts of a job before a lost one fails. Default 3. */
  maxAttempts: z.coerce.number().int().min(1).max(10).default(3),
  /** How long a job may wait for a host to take it. Default 600000. */
  queueTimeoutMs: ms(600_000),
  /** After GitHub cancels a job, how long to wait for its VM to end. Default 60000. */
  cancelGraceMs: ms(60_000),
  /**
   * The first wait after a failed call to GitHub (default 1000); each further failure doubles it,
   * up to maxErrorBackoffMs. Short at first, so one failed poll does not hold the next job for the
   * official runner's fixed 15–30 s.
   */
  errorBackoffMs: ms(1_000),
  /** The longest wait between failed calls to GitHub. Default 60000. */
  maxErrorBackoffMs: ms(60_000),
  /** Between tries to create a session. Default 30000, as the official runner. */
  sessionRetryMs: ms(30_000),
  /** How long to keep trying while another process holds this runner's session. Default 300000. */
  sessionConflictLimitMs: ms(300_000),
  /** On SIGTERM, how long a running job may go on before it is cancelled. Default 1800000. */
  shutdownGraceMs: ms(30 * 60_000),
  /** Port of /healthz, /readyz and /metrics (default 0: not served). */
  metricsPort: z.coerce.number().int().min(0).max(65_535).default(0),
  /** fatal, error, warn, info, debug or trace (default info). */
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
  /** Address the metrics port listens on (default 127.0.0.1; 0.0.0.0 in a container). */
  metricsHost: z.string().min(1).default("127.0.0.1"),
});
export type GitHubRunnerConfig = z.infer<typeof githubRunnerConfigSchema>;
