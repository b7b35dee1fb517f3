import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

/** Debian's location of the node's data when rabbitmqctl cannot say. */
const DEFAULT_DATA_DIR = "/var/lib/rabbitmq/mnesia";

/**
 * Where this machine's RabbitMQ keeps its persisted state (message stores, quorum queue logs),
 * as the running node reports it.
 */
export async function brokerDataDir(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)("rabbitmqctl", ["eval", "rabbit_mnesia:dir()."], { timeout: 30_000 });
    const dir = /"([^"]+)"/.exec(stdout)?.[1];
    if (dir) return dir;
  } catch {
    // Not on PATH or not allowed to talk to the node: fall back to the packaged default.
  }
  return DEFAULT_DATA_DIR;
}

/**
 * Reads every file under the broker's data directory and reports which of `needles` each
 * contains, byte for byte. Throws when there is nothing to read, so an empty result means "not
 * there", never "not looked at".
 */
export async function scanBrokerData(needles: readonly string[]): Promise<{ files: number; hits: string[] }> {
  const root = await brokerDataDir();
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const wanted = needles.map((n) => [n, Buffer.from(n, "utf8")] as const);
  let files = 0;
  const hits: string[] = [];
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    // A file can go away under us (a segment compacted, a log rolled over): it holds nothing then.
    const bytes = await readFile(file).catch(() => undefined);
    if (bytes === undefined) continue;
    files++;
    for (const [needle, raw] of wanted) if (bytes.includes(raw)) hits.push(`${file}: ${needle}`);
  }
  if (files === 0) throw new Error(`no broker data to read under ${root}: is this machine's RabbitMQ running here?`);
  return { files, hits };
}
