import { hostname } from "node:os";
import { z } from "zod";
import { capacitySchema } from "./capacity.ts";

const durationMs = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const commaList = z
  .string()
  .default("")
  .transform((text) =>
    text
      .split(",")
      .map((item) => item.trim())
      .filter(Boolean),
  );

/** Everything the orchestrator reads at start-up (`SOLSTICE_*` variables). */
export const orchestratorConfigSchema = z.object({
  /** AMQP URL of the broker, e.g. amqp://guest:guest@127.0.0.1:5672. */
  amqpUrl: z.string().url(),
  /** PostgreSQL URL, e.g. postgres://solstice@127.0.0.1:5432/solstice. */
  databaseUrl: z.string().url(),
  /** PostgreSQL schema for our tables (default public). */
  databaseSchema: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default("public"),
  /** Prefix of every exchange and queue (default solstice). */
  namespace: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]*$/)
    .default("solstice"),
  /** This host's name in the fleet (default: the machine's hostname). */
  hostId: z.string().min(1).default(hostname()),
  /** Labels served and slots per label: `tiny=2,debian-12=1`. */
  capacity: capacitySchema,
  /** Bound on VMs at once across all labels (default: the sum of the per-label slots). */
  maxVms: z.coerce.number().int().positive().optional(),
  /** Where per-VM run directories live. */
  runDir: z.string().optional(),
  /** Where guest images are cached. */
  imageCache: z.string().optional(),
  /** auto (functional probe), kvm or tcg. */
  accelerator: z.enum(["auto", "kvm", "tcg"]).default("auto"),
  heartbeatIntervalMs: durationMs(5_000),
  /**
   * The lease rule's time (default 60000): owners retry an attempt silent this long, so a host cut
   * off from the broker for longer than lease − 2 × heartbeat cancels its own jobs first.
   */
  leaseMs: durationMs(60_000),
  /** How long a running job may go on after SIGTERM before it is cancelled. */
  shutdownGraceMs: durationMs(30 * 60_000),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
  /**
   * Debug SSH into failed jobs (ADR-003) is off unless a job's label or repository is listed here
   * (comma-separated; default none) and the job asks for it with env SOLSTICE_DEBUG_SSH=true.
   */
  debugSshLabels: commaList,
  /** Repositories ("owner/name", comma-separated) whose failed jobs may be kept for debug SSH. */
  debugSshRepos: commaList,
  /** authorized_keys lines (newline-separated) of the people who may log in to a kept VM. */
  debugSshKeys: z.string().optional(),
  /** A file of such lines instead (mode 0600 recommended). */
  debugSshKeysFile: z.string().optional(),
  /** How long a failed job's VM is kept (default 30 min); fixed, not renewable. */
  debugSshTtlMs: durationMs(30 * 60_000),
  /** Bound on debug VMs kept on this host at once, across repositories (default 2; one per repository). */
  debugSshMaxVms: z.coerce.number().int().positive().default(2),
  /** The host name printed in the connection details (default: the machine's hostname). */
  debugSshHost: z.string().min(1).default(hostname()),
  /** Port of /healthz, /readyz and /metrics (default 9464; 0 picks a free port). */
  metricsPort: z.coerce.number().int().min(0).max(65_535).default(9464),
  /** Address the metrics port listens on (default 127.0.0.1; 0.0.0.0 in a container). */
  metricsHost: z.string().min(1).default("127.0.0.1"),
});

export type OrchestratorConfig = z.output<typeof orchestratorConfigSchema>;

/** The bound on VMs at once: SOLSTICE_MAX_VMS, or the sum of the per-label slots. */
export function effectiveMaxVms(config: Pick<OrchestratorConfig, "capacity" | "maxVms">): number {
  return config.maxVms ?? Object.values(config.capacity).reduce((a, b) => a + b, 0);
}
