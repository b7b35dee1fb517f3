import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { connectBus } from "@solstice/bus";
import { envNameOf, orchestratorConfigSchema } from "@solstice/config";
import { forgejoRunnerConfigSchema } from "@solstice/forgejo-runner";
import { githubRunnerConfigSchema } from "@solstice/github-runner";
import { generateFleetKey, type JobEvent } from "@solstice/protocol";
import { pino } from "pino";
import { parse } from "yaml";
import { projectRoot } from "./support/ciadm.ts";
import { AMQP_URL, DATABASE_URL, dropSchema, tinyJob } from "./support/fleet.ts";

interface ComposeService {
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  devices?: string[];
  ports?: string[];
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
  secrets: Record<string, unknown>;
}

/** compose.yml and the forge runners' opt-in files on top of it, as `-f … -f …` merges them. */
const optInFiles = ["compose.forgejo.yml", "compose.github.yml"];
const composeTexts = await Promise.all(
  ["compose.yml", ...optInFiles].map((f) => readFile(path.join(projectRoot, f), "utf8")),
);
const composeText = composeTexts.join("\n");
const composeFiles = composeTexts.map((text) => parse(text, { merge: true }) as Partial<ComposeFile>);
const optInServices = new Set(composeFiles.slice(1).flatMap((f) => Object.keys(f.services ?? {})));
const compose: ComposeFile = {
  services: Object.assign({}, ...composeFiles.map((f) => f.services ?? {})),
  volumes: Object.assign({}, ...composeFiles.map((f) => f.volumes ?? {})),
  secrets: Object.assign({}, ...composeFiles.map((f) => f.secrets ?? {})),
};
const envExample = parseEnvFile(await readFile(path.join(projectRoot, ".env.example"), "utf8"));

/** Read by code outside a service's zod schema: the fleet keyring (protocol) and the image catalog (images). */
const readOutsideSchema = new Set(["SOLSTICE_FLEET_KEYS", "SOLSTICE_FLEET_KEYS_FILE", "SOLSTICE_IMAGE_CATALOG"]);
/** Each built service and the schema its main.ts validates its environment with. */
const schemas = {
  orchestrator: orchestratorConfigSchema,
  "forgejo-runner": forgejoRunnerConfigSchema,
  "github-runner": githubRunnerConfigSchema,
} as const;

function parseEnvFile(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (match?.[1]) vars.set(match[1], match[2] ?? "");
  }
  return vars;
}

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?message}, $$. */
function interpolate(value: string, vars: Map<string, string>): string {
  return value.replace(
    /\$\$|\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g,
    (whole, name?: string, op?: string, arg?: string) => {
      if (whole === "$$") return "$";
      const set = vars.get(name as string);
      if (op === "-") return set ? set : (arg ?? "");
      if (op === "?" && !set) throw new Error(`compose needs ${name}: ${arg}`);
      return set ?? "";
    },
  );
}

test("every SOLSTICE_* variable compose.yml gives a built service is one its config schema knows, and every required one is set", () => {
  for (const [name, schema] of Object.entries(schemas)) {
    const service = compose.services[name];
    assert.ok(service, `compose.yml has the ${name} service`);
    const known = new Set([...Object.keys(schema.shape).map(envNameOf), ...readOutsideSchema]);
    const set = Object.keys(service.environment ?? {}).filter((v) => v.startsWith("SOLSTICE_"));
    for (const variable of set) assert.ok(known.has(variable), `${name}: ${variable} is read by nothing`);
    for (const [key, field] of Object.entries(schema.shape)) {
      const required = !(field as { safeParse(v: unknown): { success: boolean } }).safeParse(undefined).success;
      if (required) assert.ok(set.includes(envNameOf(key)), `${name}: the required ${envNameOf(key)} is set`);
    }
    // The interpolated environment passes the schema as it stands.
    const env = Object.fromEntries(
      Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), envExample)]),
    );
    const input = Object.fromEntries(
      Object.keys(schema.shape)
        .filter((k) => env[envNameOf(k)] !== undefined)
        .map((k) => [k, env[envNameOf(k)]]),
    );
    const parsed = schema.safeParse(input);
    assert.ok(parsed.success, `${name}'s environment validates: ${parsed.success ? "" : parsed.error.message}`);
  }
});

test("compose.yml starts services in dependency order, health-checks every one, and declares what they mount", async () => {
  for (const [name, service] of Object.entries(compose.services)) {
    assert.ok(service.healthcheck?.test?.length, `${name} has a health check`);
    // podman-compose 1.0.3 quotes a CMD list wrongly; one CMD-SHELL string it passes as it is.
    assert.equal(service.healthcheck?.test?.[0], "CMD-SHELL", `${name}'s health check is one shell command`);
    for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
      assert.ok(compose.services[dependency], `${name} depends on ${dependency}, which exists`);
      assert.equal(condition, "service_healthy", `${name} waits for ${dependency} to be healthy`);
      assert.ok(compose.services[dependency]?.healthcheck, `${dependency} can become healthy`);
    }
    for (const volume of service.volumes ?? []) {
      const source = volume.split(":")[0] as string;
      if (!source.startsWith("/") && !source.startsWith("."))
        assert.ok(source in compose.volumes, `volume ${source} is declared`);
    }
    const main = service.command?.find((part) => part.endsWith(".ts"));
    if (main) {
      const built = await access(path.join(projectRoot, main)).then(
        () => true,
        () => false,
      );
      if (built) assert.ok(name in schemas, `${name} is built: add its config schema to this test`);
      else assert.ok(optInServices.has(name), `${name} is not built yet, so it is in an opt-in file`);
    }
  }
  const orchestrator = compose.services.orchestrator as ComposeService;
  assert.deepEqual(Object.keys(orchestrator.depends_on ?? {}).sort(), ["postgres", "rabbitmq"]);
  assert.ok(!orchestrator.devices?.includes("/dev/kvm:/dev/kvm"), "a host without /dev/kvm can start compose.yml");
  assert.ok(orchestrator.devices?.includes("/dev/net/tun:/dev/net/tun"), "pasta gets its tap device");
  const kvm = parse(await readFile(path.join(projectRoot, "compose.kvm.yml"), "utf8")) as ComposeFile;
  assert.deepEqual(kvm.services.orchestrator?.devices, ["/dev/kvm:/dev/kvm"], "compose.kvm.yml adds /dev/kvm");
  const cache = orchestrator.volumes?.find((v) => v.startsWith("image-cache:"));
  assert.equal(cache?.split(":")[1], orchestrator.environment?.SOLSTICE_IMAGE_CACHE, "the image cache is a volume");
  const port = orchestrator.environment?.SOLSTICE_METRICS_PORT;
  assert.ok(
    orchestrator.healthcheck?.test.join(" ").includes(`127.0.0.1:${port}/healthz`),
    "the health check asks /healthz",
  );
  assert.ok(
    orchestrator.ports?.some((p) => p.endsWith(`:${port}`)),
    "the metrics port is published",
  );
});

test("docs/deploy.md documents every variable of every built service's config schema", async () => {
  const doc = await readFile(path.join(projectRoot, "docs/deploy.md"), "utf8");
  for (const schema of Object.values(schemas)) {
    for (const key of Object.keys(schema.shape))
      assert.ok(doc.includes(`\`${envNameOf(key)}\``), `${envNameOf(key)} is documented`);
  }
});

test("every variable compose.yml interpolates is documented in .env.example", () => {
  // podman-compose 1.0.3 leaves `${VAR:-}` as it stands (its default must not be empty): `${VAR}` is
  // the empty default both tools read the same way.
  assert.doesNotMatch(composeText, /\$\{[A-Z0-9_]+:-\}/, "no empty :- default in compose.yml");
  const used = new Set([...composeText.matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1] as string));
  for (const variable of used) assert.ok(envExample.has(variable), `.env.example documents ${variable}`);
});

test("the Containerfile sets up the image with bootstrap.sh's own commands and runs compose's command", async () => {
  const containerfile = await readFile(path.join(projectRoot, "Containerfile"), "utf8");
  const bootstrap = await readFile(path.join(projectRoot, "scripts/bootstrap.sh"), "utf8");
  assert.match(
    containerfile,
    /^RUN [\s\S]*?&& bash scripts\/bootstrap\.sh/m,
    "the runtime stage runs bootstrap.sh itself",
  );
  const install = /corepack pnpm install --frozen-lockfile/;
  assert.match(bootstrap, install);
  assert.match(containerfile, install, "the dependency stage runs bootstrap.sh's install command");
  assert.match(containerfile, /^FROM .* AS deps$/m, "multi-stage");
  assert.match(containerfile, /^ENTRYPOINT \["\/usr\/local\/bin\/solstice-entrypoint"\]$/m);
  const entrypoint = await readFile(path.join(projectRoot, "scripts/container/entrypoint.sh"), "utf8");
  assert.match(
    entrypoint,
    /^exec setpriv --reuid="\$user" .*--no-new-privs -- "\$@"$/m,
    "the service runs as a non-root user",
  );
  const cmd = /^CMD (\[.*\])$/m.exec(containerfile)?.[1];
  assert.deepEqual(JSON.parse(cmd ?? "[]"), compose.services.orchestrator?.command);
});

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

test("the orchestrator started as compose.yml starts it runs a tiny job and reports it on /healthz, /readyz and /metrics", {
  timeout: 240_000,
}, async () => {
  const id = randomUUID().slice(0, 8);
  const namespace = `test-${id}`;
  const schema = `test_${id}`;
  const runDir = await mkdtemp(path.join(tmpdir(), "solstice-compose-"));
  const keysFile = path.join(runDir, "fleet-keys");
  await writeFile(keysFile, `${generateFleetKey()}\n`, { mode: 0o600 });
  cleanups.push(() => rm(runDir, { recursive: true, force: true }));
  cleanups.push(() => rm(`${runDir}-job-cache`, { recursive: true, force: true }));

  // compose.yml's environment, interpolated from .env.example; only what names this machine differs:
  // the broker and database (this machine's, with a test namespace and schema), paths the
  // container has as volumes and secrets, a free metrics port, and TCG (see docs/testing.md).
  const service = compose.services.orchestrator as ComposeService;
  const env: Record<string, string> = Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), envExample)]),
  );
  Object.assign(env, {
    SOLSTICE_AMQP_URL: AMQP_URL,
    SOLSTICE_DATABASE_URL: DATABASE_URL,
    SOLSTICE_DATABASE_SCHEMA: schema,
    SOLSTICE_NAMESPACE: namespace,
    SOLSTICE_HOST_ID: `compose-${id}`,
    SOLSTICE_CAPACITY: "tiny=1",
    SOLSTICE_MAX_VMS: "1",
    SOLSTICE_ACCELERATOR: "tcg",
    SOLSTICE_IMAGE_CACHE: path.join(process.env.HOME ?? "/root", ".cache/solstice/images"),
    SOLSTICE_RUN_DIR: runDir,
    SOLSTICE_JOB_CACHE_DIR: `${runDir}-job-cache`,
    SOLSTICE_FLEET_KEYS_FILE: keysFile,
    SOLSTICE_METRICS_HOST: "127.0.0.1",
    SOLSTICE_METRICS_PORT: "0",
  });
  const [command, ...args] = service.command as string[];
  const child: ChildProcess = spawn(command === "node" ? process.execPath : (command as string), args, {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  cleanups.push(async () => {
    child.kill("SIGKILL");
    await dropSchema(schema);
  });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const lines: Record<string, unknown>[] = [];
  let onLine: ((line: Record<string, unknown>) => void) | undefined;
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    onLine?.(line);
  });
  const metricsPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no metrics port logged; stderr: ${stderr}`)), 60_000);
    onLine = (line) => {
      if (line.msg === "serving /healthz, /readyz and /metrics") {
        clearTimeout(timer);
        resolve(line.port as number);
      }
    };
    void exited.then((code) => reject(new Error(`the orchestrator exited with ${code}: ${stderr}`)));
  });
  const base = `http://127.0.0.1:${metricsPort}`;
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);

  const log = pino({ level: "silent" });
  const bus = await connectBus({ url: AMQP_URL, namespace, log });
  cleanups.push(async () => {
    await bus.deleteNamespace();
    await bus.close();
  });
  const owner = `owner-${id}`;
  const job = tinyJob(owner, [
    { name: "hello", run: "echo hello from compose" },
    { name: "again", run: "echo again" },
  ]);
  const finished = new Promise<JobEvent>((resolve) => {
    void bus.consumeEvents({
      owner,
      onEvent: async (event) => {
        if (event.jobId === job.jobId && event.body.case === "jobFinished") resolve(event);
      },
    });
  });
  await bus.publishJob(job);
  const end = await finished;
  assert.equal(end.body.case === "jobFinished" && end.body.value.result, 1, "the job succeeded");

  const metrics = await (await fetch(`${base}/metrics`)).text();
  const value = (series: string): number => {
    const line = metrics.split("\n").find((l) => l.startsWith(`${series} `));
    assert.ok(line, `/metrics has ${series}`);
    return Number(line.split(" ").at(-1));
  };
  assert.equal(value('solstice_jobs_total{state="accepted",label="tiny"}'), 1);
  assert.equal(value('solstice_jobs_total{state="success",label="tiny"}'), 1);
  assert.equal(value('solstice_vm_boot_seconds_count{label="tiny"}'), 1);
  assert.ok(value('solstice_vm_boot_seconds_sum{label="tiny"}') > 0);
  assert.equal(value('solstice_step_seconds_count{label="tiny",outcome="success"}'), 2);
  assert.equal(value('solstice_queue_depth{label="tiny"}'), 0);
  assert.equal(value("solstice_dead_letters"), 0);
  assert.equal(value("solstice_vms_running"), 0);
  assert.equal(value('solstice_capacity_slots{label="tiny"}'), 1);
  assert.equal(value('solstice_capacity_used_ratio{label="tiny"}'), 0);
  assert.equal(value("solstice_broker_reconnects_total"), 0);
  assert.equal(value("solstice_broker_connected"), 1);

  // Every line about the job carries its id: those that name it, and all between accept and finish
  // that are not the host's own.
  const accepted = lines.findIndex((l) => l.msg === "job accepted");
  const done = lines.findIndex((l) => l.msg === "job finished");
  assert.ok(accepted >= 0 && done > accepted, "the job's start and end are logged");
  for (const line of lines.slice(accepted, done + 1)) {
    assert.equal(line.job_id, job.jobId, `a line during the job has its job_id: ${JSON.stringify(line)}`);
  }
  for (const line of lines) {
    if (JSON.stringify(line).includes(job.jobId)) assert.equal(line.job_id, job.jobId, JSON.stringify(line));
  }

  child.kill("SIGTERM");
  assert.equal(await exited, 0, "SIGTERM drains and exits cleanly");
});
