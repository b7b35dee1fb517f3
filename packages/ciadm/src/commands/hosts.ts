import type { HostRecord, JobStore } from "@solstice/db";
import type { Command } from "commander";
import type { Logger } from "pino";
import { type FleetOptions, withBusAndStore, withFleetOptions, withStore } from "../fleet-access.ts";
import { ago, formatTable } from "../table.ts";
import type { Terminal } from "../terminal.ts";

interface HostsOptions extends FleetOptions {
  offlineAfter: number;
  json: boolean;
}

const OFFLINE_AFTER_HELP =
  "a host is offline after this many seconds without a heartbeat (3 missed at the default 5 s, and some slack)";

/** `ciadm hosts` and `ciadm labels`: the fleet's hosts, and capacity and load per label. */
export function registerHosts(program: Command, term: Terminal, logger: () => Logger): void {
  withFleetOptions(
    program
      .command("hosts")
      .description("the orchestrators: labels and capacity, running jobs, online/offline/draining")
      .option("--offline-after <seconds>", OFFLINE_AFTER_HELP, Number, 20)
      .option("--json", "machine-readable output", false),
    { db: true },
  ).action(async (opts: HostsOptions) => {
    const now = new Date();
    const hosts = await withStore(opts, logger(), async (store) => {
      const running = await runningByHost(store);
      return (await store.listHosts()).map((h) => ({
        ...h,
        status: hostStatus(h, now, opts.offlineAfter),
        running: running.get(h.id) ?? 0,
      }));
    });
    if (opts.json) {
      term.out(`${JSON.stringify(hosts, null, 2)}\n`);
      return;
    }
    if (hosts.length === 0) {
      term.out("no hosts registered: start an orchestrator (corepack pnpm orchestrator)\n");
      return;
    }
    term.out(
      formatTable(
        ["HOST", "STATUS", "LABELS", "MAX VMS", "RUNNING", "BACKEND", "VERSION", "HEARTBEAT"],
        hosts.map((h) => [
          h.id,
          h.status,
          Object.entries(h.labels)
            .sort(([x], [y]) => x.localeCompare(y))
            .map(([l, n]) => `${l}=${n}`)
            .join(","),
          String(h.maxVms),
          String(h.running),
          `${h.backend}/${h.accelerator}`,
          h.version,
          ago(h.lastHeartbeatAt, now),
        ]),
      ),
    );
  });

  withFleetOptions(
    program
      .command("labels")
      .description("per label: capacity of online hosts, busy (running jobs) and queued (waiting in the broker)")
      .option("--offline-after <seconds>", OFFLINE_AFTER_HELP, Number, 20)
      .option("--json", "machine-readable output", false),
    { bus: true, db: true },
  ).action(async (opts: HostsOptions) => {
    const now = new Date();
    const labels = await withBusAndStore(opts, logger(), async (bus, store) => {
      const hosts = await store.listHosts();
      const names = [...new Set(hosts.flatMap((h) => Object.keys(h.labels)))].sort();
      const running = await store.listJobs({ state: "running", limit: 1000 });
      const depths = await bus.queueDepths(names);
      return names.map((label) => {
        const serving = hosts.filter((h) => label in h.labels && hostStatus(h, now, opts.offlineAfter) === "online");
        return {
          label,
          hosts: serving.map((h) => h.id),
          capacity: serving.reduce((sum, h) => sum + (h.labels[label] ?? 0), 0),
          busy: running.filter((j) => j.label === label).length,
          queued: depths.get(label) ?? null,
        };
      });
    });
    if (opts.json) {
      term.out(`${JSON.stringify(labels, null, 2)}\n`);
      return;
    }
    if (labels.length === 0) {
      term.out("no labels: no host has registered yet\n");
      return;
    }
    term.out(
      formatTable(
        ["LABEL", "CAPACITY", "BUSY", "QUEUED", "HOSTS"],
        labels.map((l) => [
          l.label,
          String(l.capacity),
          String(l.busy),
          l.queued === null ? "-" : String(l.queued),
          l.hosts.join(",") || "(none online)",
        ]),
      ),
    );
  });
}

/** Draining wins over online: it says what the operator did; offline says the host is gone. */
export function hostStatus(
  host: HostRecord,
  now: Date,
  offlineAfterSeconds: number,
): "online" | "offline" | "draining" {
  if (now.getTime() - host.lastHeartbeatAt.getTime() > offlineAfterSeconds * 1000) return "offline";
  return host.draining ? "draining" : "online";
}

async function runningByHost(store: JobStore): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const job of await store.listJobs({ state: "running", limit: 1000 })) {
    if (job.hostId) counts.set(job.hostId, (counts.get(job.hostId) ?? 0) + 1);
  }
  return counts;
}
