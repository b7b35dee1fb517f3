import { hostname } from "node:os";
import { z } from "zod";
import { capacitySchema, warmPoolSchema } from "./capacity.ts";
import { networkPolicySchema } from "./network-policy.ts";

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

const orchestratorFields = z.object({
  /**
   * AMQP URL of the broker, e.g. amqp://guest:guest@127.0.0.1:5672, or of each node of a cluster,
   * comma-separated: the host connects to one and moves to another when it goes.
   */
  amqpUrl: z
    .string()
    .refine(
      (list) => list.split(",").every((url) => URL.canParse(url.trim())),
      "one URL, or several separated by commas",
    ),
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
  /**
   * VMs kept booted and idle per label, each used by one job then destroyed: `tiny=1,debian-12=0`
   * (default none). A pooled VM holds one of its label's slots and counts towards SOLSTICE_MAX_VMS.
   */
  warmPool: warmPoolSchema,
  /** Where per-VM run directories live. */
  runDir: z.string().optional(),
  /** Where guest images are cached. */
  imageCache: z.string().optional(),
  /** Where `uses: owner/name@ref` comes from when a job names no actions URL (a manual job). */
  actionsUrl: z.string().url().default("https://github.com"),
  /** Where fetched actions and Node runtimes are cached (default ~/.cache/solstice). */
  actionsCache: z.string().optional(),
  /** Bound on the cached actions, in MiB (least recently used go first): SOLSTICE_ACTIONS_CACHE_MB. */
  actionsCacheMb: z.coerce.number().int().positive().default(1024),
  /**
   * Bound on this host's job cache (what `actions/cache` saves for Forgejo/Gitea jobs), in MiB;
   * the least recently used entries go first. 0 turns the cache off. Default 10240.
   */
  jobCacheMb: z.coerce.number().int().nonnegative().default(10_240),
  /** Where the job cache keeps its entries (default ~/.cache/solstice/job-cache/<host id>); one orchestrator per directory. */
  jobCacheDir: z.string().optional(),
  /**
   * Loopback port of the job cache: the one host port guests reach, forwarded alone into each VM's
   * network namespace (default 0: a free port chosen at start).
   */
  jobCachePort: z.coerce.number().int().min(0).max(65_535).default(0),
  /** qemu (Linux hosts, the default) or bhyve (illumos; its settings: SOLSTICE_BHYVE_*, docs/illumos.md). */
  backend: z.enum(["qemu", "bhyve"]).default("qemu"),
  /**
   * What jobs' guests may reach, per label: `label=policy,…` with policy `outbound` (the default) or
   * `none-after-checkout` (the network is cut once the job's checkout is done).
   */
  networkPolicy: networkPolicySchema,
  /**
   * How jobs are taken from the label queues (docs/decisions/0006): `reserve` (a consumer per label,
   * armed while a slot is reserved for it; nothing is polled), `poll` (basic.get every 200 ms while
   * idle), or `auto` (the default): reserve unless a warm pool is configured or SOLSTICE_MAX_VMS is
   * below the sum of the per-label slots, where a reserved slot could keep another label waiting.
   */
  jobTaking: z.enum(["auto", "reserve", "poll"]).default("auto"),
  /** auto (functional probe), kvm or tcg. */
  accelerator: z.enum(["auto", "kvm", "tcg"]).default("auto"),
  heartbeatIntervalMs: durationMs(5_000),
  /**
   * The lease rule's time: owners retry an attempt silent this long, so a host cut off from the
   * broker for longer than lease − 2 × heartbeat cancels its own jobs first. Default: 12 heartbeat
   * intervals (60000 with the default heartbeat), so the two settings cannot drift apart.
   */
  leaseMs: z.coerce.number().int().positive().optional(),
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

/** Everything the orchestrator reads at start-up (`SOLSTICE_*` variables). */
export const orchestratorConfigSchema = orchestratorFields.superRefine((config, ctx) => {
  if (config.jobTaking === "reserve" && !canReserve(config)) {
    ctx.addIssue({
      code: "custom",
      path: ["jobTaking"],
      message:
        "reserve needs no warm pool and SOLSTICE_MAX_VMS at least the sum of the per-label slots; use auto or poll",
    });
  }
  // A pool larger than its label's slots could never fill, and one for a label not served never starts.
  for (const [label, size] of Object.entries(config.warmPool)) {
    const slots = config.capacity[label];
    if (slots === undefined || size > slots) {
      ctx.addIssue({
        code: "custom",
        path: ["warmPool"],
        message:
          slots === undefined
            ? `pool for "${label}", a label this host does not serve (SOLSTICE_CAPACITY: ${Object.keys(config.capacity).join(", ")})`
            : `pool of ${size} for "${label}" exceeds its ${slots} slot(s) in SOLSTICE_CAPACITY`,
      });
    }
  }
});

export type OrchestratorConfig = z.output<typeof orchestratorConfigSchema>;

/** The bound on VMs at once: SOLSTICE_MAX_VMS, or the sum of the per-label slots. */
/** Heartbeat intervals in a lease when SOLSTICE_LEASE_MS is not set. */
export const LEASE_HEARTBEATS = 12;

/** The lease this host keeps (and announces in Accepted): the setting, or 12 heartbeat intervals. */
export function effectiveLeaseMs(config: Pick<OrchestratorConfig, "leaseMs" | "heartbeatIntervalMs">): number {
  return config.leaseMs ?? LEASE_HEARTBEATS * config.heartbeatIntervalMs;
}

export function effectiveMaxVms(config: Pick<OrchestratorConfig, "capacity" | "maxVms">): number {
  return config.maxVms ?? Object.values(config.capacity).reduce((a, b) => a + b, 0);
}

/**
 * Whether every label can hold a reserved slot while the others run jobs up to their own bounds:
 * true when the total bound covers every label's bound and no warm pool competes for the slots.
 */
function canReserve(config: Pick<OrchestratorConfig, "capacity" | "maxVms" | "warmPool">): boolean {
  const sum = Object.values(config.capacity).reduce((a, b) => a + b, 0);
  return effectiveMaxVms(config) >= sum && Object.keys(config.warmPool).length === 0;
}

/** How this host takes jobs: SOLSTICE_JOB_TAKING, with `auto` resolved. */
export function jobTakingOf(config: Pick<OrchestratorConfig, "capacity" | "maxVms" | "warmPool" | "jobTaking">) {
  if (config.jobTaking !== "auto") return config.jobTaking;
  return canReserve(config) ? "reserve" : "poll";
}
