export { type HealthServer, type HealthServerOptions, type Readiness, startHealthServer } from "./health-server.ts";
