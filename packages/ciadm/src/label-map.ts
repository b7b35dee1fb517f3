import type { PlannedJob } from "@solstice/workflow";

/**
 * The jobs with their `runs-on` labels replaced as `--map-label FROM=TO` says, and the FROMs no job
 * uses (a likely typo). A workflow names the machine it needs (`illumos-stable`); which image serves
 * that name is this host's business, so a local run can try a workflow written for other hosts on
 * the images it has, leaving the file as written.
 */
export function mapLabels(
  jobs: readonly PlannedJob[],
  map: Readonly<Record<string, string>>,
): { jobs: PlannedJob[]; unused: string[] } {
  const used = new Set<string>();
  const mapped = jobs.map((job) => {
    const label = map[job.runsOn];
    if (label === undefined) return job;
    used.add(job.runsOn);
    return { ...job, runsOn: label };
  });
  return { jobs: mapped, unused: Object.keys(map).filter((from) => !used.has(from)) };
}
