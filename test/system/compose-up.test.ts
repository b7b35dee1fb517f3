import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Result } from "@solstice/forgejo-runner";
import { generateFleetKey } from "@solstice/protocol";
import { type FakeForgejo, type FakeTask, startFakeForgejo } from "../fakes/forgejo/fake-forgejo.ts";
import { projectRoot } from "../support/ciadm.ts";

// What an operator does on a host with podman: base images built locally (no registry here),
// the service image built from the Containerfile, `podman-compose -f compose.yml -f compose.forgejo.yml up -d`, and
// jobs from a (fake) Forgejo through the whole stack into VMs that the containerised
// orchestrator starts. Needs root (rootful podman); scripts/podman.sh installs podman.
// docs/deploy.md and docs/testing.md give the figures this test prints.

/** The compose project: fixed, so that the image-cache volume (the tiny guest image) survives runs. */
const PROJECT = "solstice-systest";
const SERVICE_IMAGE = "localhost/solstice-ci:systest";
/** Longest any one podman or podman-compose call may take (the image build is the longest). */
const COMMAND_DEADLINE_MS = 20 * 60_000;
const HEALTHY_DEADLINE_MS = 240_000;
const JOB_DEADLINE_MS = 300_000;

const figures: [string, number][] = [];
async function timed<T>(what: string, work: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const result = await work();
  figures.push([what, (Date.now() - started) / 1000]);
  return result;
}

/** Values never shown: the generated passwords, wherever podman-compose echoes a command line. */
const hidden: string[] = [];
const redact = (text: string) => hidden.reduce((t, secret) => t.replaceAll(secret, "***"), text);

const env: NodeJS.ProcessEnv = { ...process.env };
async function run(command: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { cwd: projectRoot, env, maxBuffer: 64 * 1024 * 1024, timeout: COMMAND_DEADLINE_MS },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        if (code !== 0 && !opts.allowFail) {
          reject(
            new Error(`${command} ${redact(args.join(" "))} failed (${code}):\n${redact(`${stdout}\n${stderr}`)}`),
          );
        } else resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}
const compose = (...args: string[]) =>
  run("podman-compose", ["-p", PROJECT, "-f", "compose.yml", "-f", "compose.forgejo.yml", ...args]);
const containerOf = (service: string) => `${PROJECT}_${service}_1`;

/** Runs each container's own compose health check until all pass, as a scheduler would. */
async function waitHealthy(services: string[]): Promise<void> {
  const deadline = Date.now() + HEALTHY_DEADLINE_MS;
  for (const service of services) {
    for (;;) {
      const check = await run("podman", ["healthcheck", "run", containerOf(service)], { allowFail: true });
      if (check.code === 0) break;
      if (Date.now() > deadline) {
        const logs = await run("podman", ["logs", "--tail", "40", containerOf(service)], { allowFail: true });
        throw new Error(
          `${service} not healthy within ${HEALTHY_DEADLINE_MS} ms:\n${redact(logs.stdout + logs.stderr)}`,
        );
      }
      await sleep(2_000);
    }
  }
}

function hostAddress(): string {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
  assert.ok(address, "this host has a non-loopback IPv4 address for the containers to reach the fake forge on");
  return address;
}

async function finishedTask(forge: FakeForgejo, jobId: number): Promise<FakeTask> {
  await forge.waitFor(() => forge.taskOfJob(jobId)?.logArchived === true, JOB_DEADLINE_MS, `job ${jobId} finished`);
  const task = forge.taskOfJob(jobId);
  assert.ok(task);
  await forge.waitFor(() => task.result !== Result.UNSPECIFIED, 10_000, "the task's result");
  return task;
}

const workflow = (steps: string[]) =>
  ["name: ci", "jobs:", "  build:", "    runs-on: solstice-tiny", "    steps:", ...steps].join("\n");

describe("compose up on this host runs jobs end to end (podman)", { timeout: 40 * 60_000 }, () => {
  let forge: FakeForgejo;
  let dir: string;

  before(async () => {
    assert.equal(process.getuid?.(), 0, "the compose system test needs root (rootful podman)");
    env.CONTAINERS_CONF = (await run("bash", ["scripts/podman.sh"])).stdout.trim();
    const images = await timed("base images (debootstrap, Node 24, RabbitMQ and PostgreSQL stand-ins)", () =>
      run("bash", ["test/containers/build-local-images.sh"]),
    );
    for (const line of images.stdout.trim().split("\n")) {
      const [name, value] = line.split("=");
      if (name && value) env[name] = value;
    }
    assert.ok(env.RABBITMQ_IMAGE && env.POSTGRES_IMAGE && env.SOLSTICE_NODE_IMAGE, images.stdout);

    forge = await startFakeForgejo({ host: hostAddress() });
    dir = await mkdtemp(path.join(tmpdir(), "solstice-systest-"));
    const keys = path.join(dir, "fleet-keys");
    await writeFile(keys, `${generateFleetKey()}\n`, { mode: 0o600 });
    const password = (name: string) => {
      const value = `${name}-${randomBytes(12).toString("hex")}`;
      hidden.push(value);
      return value;
    };
    // The site's CA (these machines intercept outbound TLS): the build's optional extra CA.
    const caDir = "/usr/local/share/ca-certificates";
    const caFiles = (await readdir(caDir).catch(() => [])).filter((f) => f.endsWith(".crt"));
    const ca = (await Promise.all(caFiles.map((f) => readFile(path.join(caDir, f), "utf8")))).join("\n");
    Object.assign(env, {
      RABBITMQ_PASSWORD: password("rabbitmq"),
      POSTGRES_PASSWORD: password("postgres"),
      SOLSTICE_BUILD_CA: ca,
      SOLSTICE_IMAGE: SERVICE_IMAGE,
      SOLSTICE_FLEET_KEYS_PATH: keys,
      SOLSTICE_HOST_ID: "compose-systest",
      SOLSTICE_CAPACITY: "tiny=1",
      SOLSTICE_MAX_VMS: "1",
      // A lost attempt is retried after 20 s instead of a minute (the restart below).
      SOLSTICE_LEASE_MS: "20000",
      SOLSTICE_ACCELERATOR: "auto",
      // Published on the host's loopback: ports of their own, clear of the machine's services.
      SOLSTICE_METRICS_PUBLISH_PORT: String(19464 + Math.floor(Math.random() * 500)),
      RABBITMQ_MANAGEMENT_PORT: String(25672 + 1000 + Math.floor(Math.random() * 500)),
    });
    // Left over from an interrupted run: its containers and state, never the image cache.
    await compose("down");
    await removeStateVolumes();

    await timed("service image build (podman-compose build)", () => compose("build", "orchestrator"));
    forge.addRegistrationToken("systest-registration");
    await compose(
      "run",
      "--rm",
      "--no-deps",
      "forgejo-runner",
      "node",
      "--import",
      "tsx",
      "services/forgejo-runner/src/main.ts",
      "register",
      "--no-interactive",
      "--instance",
      forge.url,
      "--token",
      "systest-registration",
      "--labels",
      "solstice-tiny:vm:tiny",
      "--file",
      "/var/lib/solstice/runner/.runner",
    );
    await timed("up -d", () => compose("up", "-d"));
    await timed("up to healthy", () => waitHealthy(["rabbitmq", "postgres", "orchestrator", "forgejo-runner"]));
  });

  after(async () => {
    await compose("down").catch((err: unknown) => console.error(String(err)));
    await removeStateVolumes().catch((err: unknown) => console.error(String(err)));
    await forge?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    console.log(
      `compose system test, seconds:\n${figures.map(([w, s]) => `  ${s.toFixed(1).padStart(7)}  ${w}`).join("\n")}`,
    );
  });

  /** The project's state, never its image cache; and its network, made again with today's plugins. */
  async function removeStateVolumes(): Promise<void> {
    await run("podman", ["network", "rm", "-f", `${PROJECT}_default`], { allowFail: true });
    for (const volume of ["rabbitmq-data", "postgres-data", "run-dir", "runner-state"]) {
      await run("podman", ["volume", "rm", "-f", `${PROJECT}_${volume}`], { allowFail: true });
    }
  }

  test("a job from the forge runs in a VM the containerised orchestrator starts: rows in order, success, TCG with its reason", async () => {
    const jobId = forge.queueJob({
      workflow: workflow([
        "      - name: first",
        "        run: echo one-a; echo one-b",
        "      - name: second",
        "        run: echo two; uname -s",
      ]),
    });
    const task = await timed("first job (queued at the forge to its result)", () => finishedTask(forge, jobId));
    const lines = task.log.map((l) => l.content);
    assert.equal(task.result, Result.SUCCESS, lines.join("\n"));
    const range = (i: number) => {
      const step = task.steps[i];
      assert.ok(step);
      return lines.slice(Number(step.logIndex), Number(step.logIndex + step.logLength));
    };
    assert.deepEqual(range(0), ["one-a", "one-b"]);
    assert.deepEqual(range(1), ["two", "Linux"]);
    const logs = await run("podman", ["logs", containerOf("orchestrator")]);
    const tcg = logs.stdout.split("\n").find((l) => l.includes('"accelerator":"tcg"') && l.includes("using tcg"));
    assert.ok(tcg, "the orchestrator logs that it uses TCG and why");
    for (const secret of hidden) assert.ok(!(logs.stdout + logs.stderr).includes(secret), "no password in a log");
  });

  test("from inside a VM the broker and the database cannot be reached, the forge on the host can", async () => {
    const address = async (service: string) =>
      (
        await run("podman", [
          "inspect",
          "-f",
          "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
          containerOf(service),
        ])
      ).stdout.trim();
    const broker = `${await address("rabbitmq")}:5672`;
    const database = `${await address("postgres")}:5432`;
    const forgeAddress = new URL(forge.url).host;
    const probe = (target: string) => {
      const [ip, port] = target.split(":");
      return `if timeout 5 bash -c 'exec 3<>/dev/tcp/${ip}/${port}' 2>/dev/null; then echo "open ${target}"; else echo "closed ${target}"; fi`;
    };
    const jobId = forge.queueJob({
      workflow: workflow([
        "      - name: reach",
        "        shell: bash",
        "        run: |",
        ...[broker, database, forgeAddress].map((t) => `          ${probe(t)}`),
      ]),
    });
    const task = await finishedTask(forge, jobId);
    const lines = task.log.map((l) => l.content);
    assert.equal(task.result, Result.SUCCESS, lines.join("\n"));
    assert.deepEqual(
      lines.filter((l) => /^(open|closed) /.test(l)),
      [`closed ${broker}`, `closed ${database}`, `open ${forgeAddress}`],
    );
    // The orchestrator's own container reaches both: "closed" above is the VM namespace's doing.
    for (const target of [broker, database]) {
      const [ip, port] = target.split(":");
      await run("podman", [
        "exec",
        containerOf("orchestrator"),
        "bash",
        "-c",
        `timeout 5 bash -c 'exec 3<>/dev/tcp/${ip}/${port}'`,
      ]);
    }
  });

  test("ciadm run --amqp inside the orchestrator's container runs a workflow through the broker", async () => {
    await run("podman", ["exec", "-i", containerOf("orchestrator"), "sh", "-c", "cat > /tmp/via-ciadm.yml"], {
      input: ["on: push", "jobs:", "  remote:", "    runs-on: tiny", "    steps:", "      - run: echo via-ciadm"].join(
        "\n",
      ),
    });
    const result = await compose(
      "exec",
      "-T",
      "orchestrator",
      "sh",
      "-c",
      'cd /tmp && ciadm run --amqp "$SOLSTICE_AMQP_URL" via-ciadm.yml',
    );
    assert.match(result.stdout, /accepted by compose-systest/, redact(result.stdout));
    assert.match(result.stdout, /│ via-ciadm/);
    assert.match(result.stdout, /Summary:\n\s+remote\s+succeeded/);
  });

  test("compose restart orchestrator in the middle of a job: the job is retried or finishes, nothing is lost", async () => {
    const jobId = forge.queueJob({
      workflow: workflow([
        "      - name: long",
        "        run: echo begin; sleep 30; echo end",
        "      - name: after",
        "        run: echo after",
      ]),
    });
    await forge.waitFor(
      () => forge.taskOfJob(jobId)?.log.some((l) => l.content === "begin") === true,
      JOB_DEADLINE_MS,
      "the long step started",
    );
    await timed("compose restart orchestrator", () => compose("restart", "orchestrator"));
    const task = await timed("restarted job to its result", () => finishedTask(forge, jobId));
    const lines = task.log.map((l) => l.content);
    assert.equal(task.result, Result.SUCCESS, lines.join("\n"));
    const last = task.steps.at(-1);
    assert.ok(last);
    assert.deepEqual(lines.slice(Number(last.logIndex), Number(last.logIndex + last.logLength)), ["after"]);
    assert.ok(lines.includes("end"), lines.join("\n"));
  });

  test("compose down, then up: the job history is still in PostgreSQL", async () => {
    const before = await jobsInDatabase();
    assert.ok(before.length >= 4, `four jobs recorded: ${JSON.stringify(before)}`);
    await compose("down");
    await timed("up -d after down", () => compose("up", "-d"));
    await timed("up to healthy after down", () =>
      waitHealthy(["rabbitmq", "postgres", "orchestrator", "forgejo-runner"]),
    );
    const again = await jobsInDatabase();
    assert.deepEqual(again.map((j) => `${j.id} ${j.state}`).sort(), before.map((j) => `${j.id} ${j.state}`).sort());
    assert.ok(
      again.every((j) => j.state === "succeeded"),
      JSON.stringify(again),
    );
  });

  async function jobsInDatabase(): Promise<{ id: string; state: string }[]> {
    const listed = await run("podman", ["exec", containerOf("orchestrator"), "ciadm", "jobs", "--json"]);
    return (JSON.parse(listed.stdout) as { id: string; state: string }[]).map(({ id, state }) => ({ id, state }));
  }
});
