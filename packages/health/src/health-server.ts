import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/** Whether a service can do its work now; `reason` says why not, for whoever reads /readyz. */
export interface Readiness {
  ready: boolean;
  reason?: string;
}

export interface HealthServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  registry: Registry;
  /** Asked on every /readyz: the service's own rule (broker connected, not draining, forge reachable…). */
  ready(): Readiness;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * /healthz (the process answers), /readyz (it can work now) and /metrics (Prometheus), the same
 * for every Solstice service. A container's health check and a load balancer use the first two;
 * nothing else is served.
 */
export async function startHealthServer(options: HealthServerOptions): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      const { ready, reason } = options.ready();
      res.writeHead(ready ? 200 : 503, { "content-type": "text/plain" }).end(ready ? "ready\n" : `${reason}\n`);
    } else if (path === "/metrics") {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": options.registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${error}\n`),
      );
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: /healthz, /readyz, /metrics\n");
    }
  });
  // Slow or idle scrapers cannot hold sockets open for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
