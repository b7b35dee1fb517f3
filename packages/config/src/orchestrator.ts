import { hostname } from "node:os";
import { z } from "zod";
import { capacitySchema } from "./capacity.ts";

const durationMs = (fallback: number) => z.coerce.number().int().positive().default(fallback);

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
  /** How long a running job may go on after SIGTERM before it is cancelled. */
  shutdownGraceMs: durationMs(30 * 60_000),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
});

export type OrchestratorConfig = z.output<typeof orchestratorConfigSchema>;

/** The bound on VMs at once: SOLSTICE_MAX_VMS, or the sum of the per-label slots. */
export function effectiveMaxVms(config: Pick<OrchestratorConfig, "capacity" | "maxVms">): number {
  return config.maxVms ?? Object.values(config.capacity).reduce((a, b) => a + b, 0);
}
