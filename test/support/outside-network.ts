import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomInt, randomUUID } from "node:crypto";
import { networkInterfaces } from "node:os";

/**
 * A stand-in for "the internet" that a test owns: a network namespace of its own, linked to the
 * host by a veth pair on a private /30. Needs root (`ip netns`).
 *
 * Why there: a guest's outbound connections leave through pasta as the host's own sockets, but
 * pasta copies the host's addresses into the VM's namespace, so neither the host's loopback nor
 * its own addresses lead to a host service (packages/vm/test/qemu-backend.test.ts proves that). An
 * address behind a veth is a real route out of the host, like any address on the internet, and it
 * belongs to this test alone.
 */
export class OutsideNetwork {
  readonly namespace = `slst-${randomUUID().slice(0, 8)}`;
  private readonly hostSide = `slh${this.namespace.slice(5, 11)}`;
  private readonly peerSide = `sln${this.namespace.slice(5, 11)}`;
  /** The namespace's address: "outside", reachable from guests and from the host. */
  readonly address: string;
  /** The host's end of the veth: reachable from the namespace (a server there can listen on it). */
  readonly hostAddress: string;
  private readonly processes: ChildProcess[] = [];

  constructor() {
    const used = new Set(
      Object.values(networkInterfaces())
        .flat()
        .map((a) => a?.address.split(".").slice(0, 3).join(".")),
    );
    let net: string;
    do net = `10.213.${randomInt(256)}`;
    while (used.has(net));
    const base = randomInt(64) * 4;
    this.hostAddress = `${net}.${base + 1}`;
    this.address = `${net}.${base + 2}`;
  }

  start(): void {
    const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
    ip("netns", "add", this.namespace);
    ip("link", "add", this.hostSide, "type", "veth", "peer", "name", this.peerSide);
    ip("link", "set", this.peerSide, "netns", this.namespace);
    ip("addr", "add", `${this.hostAddress}/30`, "dev", this.hostSide);
    ip("link", "set", this.hostSide, "up");
    ip("-n", this.namespace, "addr", "add", `${this.address}/30`, "dev", this.peerSide);
    ip("-n", this.namespace, "link", "set", this.peerSide, "up");
  }

  /** Runs a Node script inside the namespace; resolves once it prints its first line. */
  async run(script: string): Promise<void> {
    const child = spawn("ip", ["netns", "exec", this.namespace, process.execPath, "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.processes.push(child);
    await new Promise<void>((resolve, reject) => {
      let err = "";
      child.stderr?.on("data", (d) => {
        err += d;
      });
      child.stdout?.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`a process in ${this.namespace} exited ${code}: ${err}`)));
    });
  }

  /**
   * Makes a server that listens on the host's end of the veth at `port` reachable as
   * `address:port`: a TCP relay in the namespace, as a service on the internet would be.
   */
  relay(port: number): Promise<void> {
    return this.run(
      `const net = require("node:net");
net.createServer((c) => { const u = net.connect(${port}, "${this.hostAddress}"); c.pipe(u).pipe(c); c.on("error", () => u.destroy()); u.on("error", () => c.destroy()); })
  .listen(${port}, "${this.address}", () => console.log("listening"));`,
    );
  }

  stop(): void {
    for (const child of this.processes) child.kill("SIGKILL");
    // Deleting the namespace deletes its end of the veth pair, and with it the host's end.
    execFileSync("ip", ["netns", "del", this.namespace], { stdio: "ignore" });
  }
}
