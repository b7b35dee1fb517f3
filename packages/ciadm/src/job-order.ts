import type { PlannedJob } from "@solstice/workflow";

/**
 * Orders jobs so each comes after the jobs it `needs`; a job whose needs are not among the
 * selected jobs runs as if they had succeeded (as `--job` asks for one job alone). A cycle is an
 * error naming the jobs in it.
 */
export function orderByNeeds(jobs: PlannedJob[]): PlannedJob[] {
  const byKey = new Map(jobs.map((j) => [j.key, j]));
  const done = new Set<string>();
  const visiting = new Set<string>();
  const ordered: PlannedJob[] = [];
  const visit = (job: PlannedJob, path: string[]) => {
    if (done.has(job.key)) return;
    if (visiting.has(job.key))
      throw new Error(`jobs depend on each other in a cycle: ${[...path, job.key].join(" → ")}`);
    visiting.add(job.key);
    for (const need of job.needs) {
      const dep = byKey.get(need);
      if (dep) visit(dep, [...path, job.key]);
    }
    visiting.delete(job.key);
    done.add(job.key);
    ordered.push(job);
  };
  for (const job of jobs) visit(job, []);
  return ordered;
}
