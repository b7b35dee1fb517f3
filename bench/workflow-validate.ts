// Validates a generated workflow of just under 1 MiB (the size limit) with parseWorkflow and
// prints a table: median of 5 runs. Not part of the pass/fail suite.
import { MAX_WORKFLOW_BYTES, parseWorkflow } from "@solstice/workflow";

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

const text = bigWorkflow();
const contexts = { github: { ref: "refs/heads/main", sha: "abc", event_name: "push" } };
const times: number[] = [];
let jobs = 0;
for (let i = 0; i < 5; i++) {
  const start = performance.now();
  jobs = parseWorkflow(text, { file: "big.yml", contexts }).jobs.length;
  times.push(performance.now() - start);
}
times.sort((a, b) => a - b);
const kib = (Buffer.byteLength(text) / 1024).toFixed(0);
process.stdout.write(`| workflow | jobs | steps | median validate (ms) | min (ms) |\n|---|---|---|---|---|\n`);
process.stdout.write(`| ${kib} KiB | ${jobs} | ${jobs * 20} | ${times[2]?.toFixed(0)} | ${times[0]?.toFixed(0)} |\n`);
