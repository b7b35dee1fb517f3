// Validates a generated workflow of just under 1 MiB (the size limit) with parseWorkflow and prints
// a table: the first run in a fresh process (what `ciadm workflow check` pays), the median of the
// runs after it, and the YAML parse alone with the same options (the floor under both). Each as
// wall time and as this process's CPU time, which other load on the machine disturbs far less.
// Not part of the pass/fail suite.
import { MAX_WORKFLOW_BYTES, parseWorkflow } from "@solstice/workflow";
import { LineCounter, parseDocument } from "yaml";

const WARM_RUNS = 5;

function bigWorkflow(): string {
  const head = "on: push\nenv:\n  APP: demo\njobs:\n";
  const jobs: string[] = [];
  let size = head.length;
  for (let j = 0; ; j++) {
    const steps: string[] = [];
    for (let s = 0; s < 20; s++) {
      steps.push(
        `      - name: step ${s} of \${{ github.ref }}\n        id: s${s}\n        if: \${{ github.event_name == 'push' && !cancelled() }}\n        env:\n          V: \${{ format('{0}-{1}', env.APP, ${s}) }}\n        run: |\n          echo "\${{ steps.s${Math.max(0, s - 1)}.outputs.x }}" \${{ github.sha }}\n          echo "x=${s}" >> "$GITHUB_OUTPUT"\n`,
      );
    }
    const job = `  job${j}:\n    runs-on: tiny\n    outputs:\n      x: \${{ steps.s19.outputs.x }}\n    steps:\n${steps.join("")}`;
    if (size + job.length > MAX_WORKFLOW_BYTES) break;
    size += job.length;
    jobs.push(job);
  }
  return head + jobs.join("");
}

interface Timing {
  wallMs: number;
  cpuMs: number;
}

function timed(run: () => void): Timing {
  const start = performance.now();
  const cpu = process.cpuUsage();
  run();
  const used = process.cpuUsage(cpu);
  return { wallMs: performance.now() - start, cpuMs: (used.user + used.system) / 1000 };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** `wall ms (cpu ms)`, each the median when there are several timings. */
function cell(timings: Timing[]): string {
  const wall = median(timings.map((t) => t.wallMs)).toFixed(0);
  return `${wall} (${median(timings.map((t) => t.cpuMs)).toFixed(0)})`;
}

const text = bigWorkflow();
const contexts = { github: { ref: "refs/heads/main", sha: "abc", event_name: "push" } };
let jobs = 0;
const validate = () => {
  jobs = parseWorkflow(text, { file: "big.yml", contexts }).jobs.length;
};
// parseWorkflow's own YAML options; the document is thrown away.
const yamlOnly = () => {
  parseDocument(text, { lineCounter: new LineCounter(), prettyErrors: false, uniqueKeys: true });
};

const first = timed(validate);
const warm = Array.from({ length: WARM_RUNS }, () => timed(validate));
const yaml = Array.from({ length: WARM_RUNS }, () => timed(yamlOnly));

const kib = (Buffer.byteLength(text) / 1024).toFixed(0);
process.stdout.write(
  `| workflow | jobs | steps | first validate, fresh process | median of ${WARM_RUNS} more | YAML parse alone, median |\n`,
);
process.stdout.write("| | | | ms wall (ms CPU) | ms wall (ms CPU) | ms wall (ms CPU) |\n|---|---|---|---|---|---|\n");
process.stdout.write(`| ${kib} KiB | ${jobs} | ${jobs * 20} | ${cell([first])} | ${cell(warm)} | ${cell(yaml)} |\n`);
