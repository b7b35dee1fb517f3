import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const script = path.join(import.meta.dirname, "../../scripts/rabbitmq-cluster.sh");

/**
 * The three-node RabbitMQ cluster of scripts/rabbitmq-cluster.sh, on ports and folders of its own
 * for the tests (5690 + i, /tmp/solstice-rabbit-cluster-test), apart from the cluster bench:fleet
 * uses and from the machine's broker, which it never touches.
 */
export interface TestCluster {
  /** The nodes' AMQP URLs, node i at index i − 1. */
  readonly urls: readonly string[];
  /** Stops the broker on node i (1-3): its clients lose their connections, its queue replicas go. */
  stopNode(i: number): Promise<void>;
  startNode(i: number): Promise<void>;
  /** Cuts node i off from the other two at the Erlang level (the script's `partition`). */
  partition(i: number): Promise<void>;
  /** Joins node i to the others again. */
  heal(i: number): Promise<void>;
  /** The nodes (1-3) node i is connected to now, and whether its broker runs (not paused or stopped). */
  view(i: number): Promise<{ peers: number[]; running: boolean }>;
  /** The node (1-3) that leads `queue` now. */
  leaderOf(queue: string): Promise<number>;
  /** Stops every node and deletes their data. */
  close(): Promise<void>;
}

const BASE_PORT = 5690;
const env = {
  ...process.env,
  SOLSTICE_CLUSTER_BASE_PORT: String(BASE_PORT),
  SOLSTICE_CLUSTER_DIR: "/tmp/solstice-rabbit-cluster-test",
};

async function cluster(...args: string[]): Promise<string> {
  const { stdout } = await run("bash", [script, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

export async function startTestCluster(): Promise<TestCluster> {
  await cluster("start", "3");
  const urls = (await cluster("urls", "3")).trim().split(",");
  return {
    urls,
    stopNode: async (i) => {
      await cluster("stop-node", String(i));
    },
    startNode: async (i) => {
      await cluster("start-node", String(i));
    },
    partition: async (i) => {
      await cluster("partition", String(i));
    },
    heal: async (i) => {
      await cluster("heal", String(i));
    },
    async view(i) {
      const peers = await cluster("ctl", String(i), "eval", "nodes().");
      const running = await cluster("ctl", String(i), "eval", "rabbit:is_running().");
      return {
        peers: [...peers.matchAll(/solstice-(\d+)@/g)].map((m) => Number(m[1]) - BASE_PORT).sort(),
        running: running.trim() === "true",
      };
    },
    async leaderOf(queue) {
      let out = "";
      // Any running node knows; one may be stopped by the test.
      for (const node of [1, 2, 3]) {
        out = await cluster("ctl", String(node), "list_queues", "name", "leader", "--formatter", "json", "-q").catch(
          () => "",
        );
        if (out) break;
      }
      const entry = (JSON.parse(out || "[]") as Array<{ name: string; leader: string }>).find((q) => q.name === queue);
      const port = /solstice-(\d+)@/.exec(entry?.leader ?? "")?.[1];
      if (!port) throw new Error(`no leader known for queue ${queue}`);
      return Number(port) - BASE_PORT;
    },
    close: async () => {
      await cluster("stop");
    },
  };
}
