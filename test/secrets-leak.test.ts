import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import {
  FleetKeyring,
  generateFleetKey,
  JobEventSchema,
  JobRequestSchema,
  JobSource,
  Outcome,
  parseFleetKeys,
  toBinary,
  toJson,
} from "@solstice/protocol";
import { parseWorkflow, toJobRequest } from "@solstice/workflow";
import pg from "pg";
import { pino } from "pino";
import { maskTestForms } from "../packages/executor/test/mask-forms.ts";
import { scanBrokerData } from "./support/broker-disk.ts";
import { DATABASE_URL, leftovers, startTestFleet, type TestFleet } from "./support/fleet.ts";

// Canaries: unique per run, with the characters that URL and JSON encodings change.
const run = randomBytes(4).toString("hex");
const CANARY = `cnry-${run}-a/b+c d&e"f`;
const CANARY_LINES = [`cnry-ml1-${run}-AAAA`, `cnry-ml2-${run}-BBBB`, `cnry-ml3-${run}-CCCC`];
const MULTILINE = CANARY_LINES.join("\n");

/** Every text a canary could hide as; none may appear anywhere after the job. */
function forbidden(): string[] {
  return [
    ...Object.values(maskTestForms(CANARY)),
    ...CANARY_LINES,
    `cnry-${run}`,
    `cnry-ml1-${run}`,
    Buffer.from(`cnry-${run}`).toString("base64").slice(0, 12),
  ];
}

function findLeaks(where: string, text: string): string[] {
  return forbidden()
    .filter((form) => text.includes(form))
    .map((form) => `${where}: ${form}`);
}

const WORKFLOW = `jobs:
  leak:
    runs-on: tiny
    env:
      CANARY: \${{ secrets.CANARY }}
    defaults:
      run:
        shell: bash
    steps:
      - name: print the secret in many encodings
        run: |
          echo "raw: $CANARY"
          echo "stderr: $CANARY" >&2
          printf '%s' "$CANARY" | base64 -w0; echo
          printf 'x%s' "$CANARY" | base64 -w0; echo
          printf 'xy%s' "$CANARY" | base64 -w0; echo
          printf '%s' "$CANARY" | sed -e 's/%/%25/g' -e 's/ /%20/g' -e 's/&/%26/g' -e 's/"/%22/g' -e 's|/|%2F|g' -e 's/+/%2B/g'; echo
          printf '{"v":"%s"}\\n' "$(printf '%s' "$CANARY" | sed 's/"/\\\\"/g')"
      - name: print a multi-line secret line by line
        env:
          ML: \${{ secrets.MULTILINE }}
        run: |
          printf '%s\\n' "$ML"
          printf '%s\\n' "$ML" | sed -n 2p | tr -d '\\n'; echo " <- line two"
      - name: split the secret across the 64 KiB line bound
        run: |
          for cut in 3 11; do
            head -c $((65536 - cut)) /dev/zero | tr '\\0' x
            printf '%s tail\\n' "$CANARY"
          done
      - name: fail with the secret in the output
        run: |
          echo "failing with $CANARY"
          exit 3
`;

describe("secrets never leave the host unmasked (tiny guest, TCG, through the bus)", { timeout: 300_000 }, () => {
  let fleet: TestFleet;
  const logLines: string[] = [];
  const keyring = new FleetKeyring(parseFleetKeys(generateFleetKey("leaktest")));
  before(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    fleet = await startTestFleet("tiny=1", { keyring, log: pino({ level: "trace" }, sink) });
  });
  after(async () => {
    await fleet?.close();
  });

  test("canaries printed raw, encoded, multi-line and split across chunks appear in no event, log, row, broker file or run directory", async () => {
    const workflow = parseWorkflow(WORKFLOW, { file: "leak.yml" });
    const job = workflow.jobs[0];
    assert.ok(job);
    const request = toJobRequest(workflow, job, {
      source: JobSource.MANUAL,
      owner: fleet.owner,
      repository: { url: "", fullName: "solstice/leak", commitSha: "", ref: "" },
      secrets: { values: { CANARY, MULTILINE }, keyring },
    });
    const requestBytes = Buffer.from(toBinary(JobRequestSchema, request)).toString("latin1");

    const events = await fleet.runToEnd(request);
    const finished = events.at(-1);
    assert.equal(finished?.body.case, "jobFinished");
    assert.equal(finished?.body.value.result, Outcome.FAILURE, "the last step fails on purpose");

    const eventText = events.map((e) => JSON.stringify(toJson(JobEventSchema, e))).join("\n");
    const lines = events.flatMap((e) => (e.body.case === "log" ? e.body.value.lines.map((l) => l.text) : []));
    // The steps really ran and printed where the secrets were.
    assert.ok(lines.some((l) => l === "raw: ***"));
    assert.ok(lines.some((l) => l === "stderr: ***"));
    assert.ok(lines.some((l) => l === "*** <- line two"));
    assert.ok(lines.filter((l) => l.endsWith("*** tail")).length === 2, "both split secrets masked across pieces");
    assert.ok(lines.some((l) => l === "failing with ***"));

    const dump = await dumpSchema(fleet.namespace.replace("test-", "test_"));
    assert.ok(dump.includes("leak"), "the dump holds the job's rows");
    const runDirFiles = await readTree(fleet.runRoot);
    // The broker's persisted messages (message stores, quorum queue logs): the job id is there, as
    // the job request and its events went through them; no canary is.
    const broker = await scanBrokerData([request.jobId, ...forbidden()]);
    assert.ok(
      broker.hits.some((hit) => hit.endsWith(request.jobId)),
      "the broker's files hold this job's messages",
    );
    const leaks = [
      ...broker.hits.filter((hit) => !hit.endsWith(request.jobId)).map((hit) => `broker data ${hit}`),
      ...findLeaks("JobRequest bytes on the bus", requestBytes),
      ...findLeaks("events", eventText),
      ...findLeaks("orchestrator log", logLines.join("")),
      ...findLeaks("PostgreSQL", dump),
      ...runDirFiles.flatMap(([file, text]) => findLeaks(file, text)),
    ];
    assert.deepEqual(leaks, []);
    assert.ok(
      logLines.some((l) => l.includes(request.jobId)),
      `the services logged about the job (${logLines.length} lines)`,
    );
    assert.deepEqual(await leftovers(fleet.runRoot), { dirs: [], qemu: [] }, "run directory and seed removed");
    assert.deepEqual(
      runDirFiles.filter(([, text]) => text.includes("PRIVATE KEY")),
      [],
      "no SSH private key left on disk",
    );
  });
});

async function dumpSchema(schema: string): Promise<string> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    const tables = await client.query<{ table_name: string }>(
      "select table_name from information_schema.tables where table_schema = $1",
      [schema],
    );
    const rows: string[] = [];
    for (const { table_name } of tables.rows) {
      const result = await client.query(`select row_to_json(t)::text as row from "${schema}"."${table_name}" t`);
      rows.push(...result.rows.map((r: { row: string }) => r.row));
    }
    return rows.join("\n");
  } finally {
    await client.end();
  }
}

async function readTree(root: string): Promise<Array<[string, string]>> {
  const files: Array<[string, string]> = [];
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    files.push([file, await readFile(file, "latin1").catch(() => "")]);
  }
  return files;
}
