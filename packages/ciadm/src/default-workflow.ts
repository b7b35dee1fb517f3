import { readdir, stat } from "node:fs/promises";
import path from "node:path";

/** A mistake in how `ciadm run` was called that the user fixes by naming a file. */
export class NoDefaultWorkflowError extends Error {
  override name = "NoDefaultWorkflowError";
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** The KDL workflow: Solstice's own file, written for Solstice alone (ADR-001). */
export const KDL_WORKFLOW = ".solstice/workflow.kdl";

/**
 * Where Actions workflows are looked for, in order. Forgejo reads `.forgejo/workflows` and only
 * without it `.github/workflows`; Gitea reads `.gitea/workflows` the same way.
 */
export const WORKFLOW_DIRS = [".forgejo/workflows", ".gitea/workflows", ".github/workflows"];

/**
 * The workflow `ciadm run` runs when given none, relative to `root`: `.solstice/workflow.kdl` when
 * it exists — a project keeps that file for Solstice, where its Actions files are the forge's —
 * then the only `.yml`/`.yaml` file of the first of WORKFLOW_DIRS that has any. Several files there
 * are a choice only the user can make.
 */
export async function defaultWorkflow(root: string): Promise<string> {
  if (await isFile(path.join(root, KDL_WORKFLOW))) return KDL_WORKFLOW;
  for (const dir of WORKFLOW_DIRS) {
    const names = await readdir(path.join(root, dir)).catch(() => [] as string[]);
    const files = names.filter((n) => /\.ya?ml$/i.test(n)).sort();
    if (files.length === 1) return `${dir}/${files[0]}`;
    if (files.length > 1) {
      throw new NoDefaultWorkflowError(
        `${dir} has ${files.length} workflows (${files.join(", ")}); say which one to run`,
        `ciadm run ${dir}/${files[0]}`,
      );
    }
  }
  throw new NoDefaultWorkflowError(
    `no workflow to run in ${root}: no ${KDL_WORKFLOW} and no .yml file in ${WORKFLOW_DIRS.join(", ")}`,
    "name the file: ciadm run path/to/workflow.yml",
  );
}

async function isFile(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
}
