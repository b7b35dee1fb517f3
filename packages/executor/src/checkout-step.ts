import type { Checkout, JobRequest } from "@solstice/protocol";
import type { SshSession } from "@solstice/ssh";

/**
 * The local repository's commit, for `ciadm run`: a git bundle made on the developer's machine
 * and cloned inside the guest, so the guest needs no route back to the host.
 */
export interface LocalCheckoutSource {
  readonly bundle: Buffer;
  /** The ref inside the bundle that points at the commit to check out. */
  readonly ref: string;
  readonly commit: string;
}

const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/**
 * The script that puts the job's commit into `dest` in the guest: from the uploaded bundle in
 * a local run, from the repository URL otherwise. `git init` + `fetch` works whether or not the
 * directory already exists, and `--detach` leaves the checkout at exactly the requested commit.
 */
export function checkoutScript(
  job: JobRequest,
  checkout: Checkout,
  dest: string,
  local?: { bundlePath: string; ref: string },
): string {
  const depth = checkout.fetchDepth > 0 ? ` --depth=${checkout.fetchDepth}` : "";
  const lines = [`mkdir -p ${quote(dest)}`, `cd ${quote(dest)}`, "git init -q", "git config advice.detachedHead false"];
  if (local) {
    lines.push(`git fetch -q ${quote(local.bundlePath)} ${quote(`+${local.ref}:refs/remotes/origin/HEAD`)}`);
    lines.push("git checkout -q --detach refs/remotes/origin/HEAD", `rm -f ${quote(local.bundlePath)}`);
  } else {
    const url = checkout.repository
      ? new URL(`${checkout.repository}.git`, serverOf(job.repository?.url ?? "")).toString()
      : (job.repository?.url ?? "");
    if (!url) throw new Error("checkout: the job names no repository URL");
    const want = checkout.ref || job.repository?.commitSha || job.repository?.ref || "HEAD";
    lines.push(`git remote add origin ${quote(url)} 2>/dev/null || git remote set-url origin ${quote(url)}`);
    lines.push(`git fetch -q${depth} origin ${quote(want)}`, "git checkout -q --detach FETCH_HEAD");
  }
  lines.push(`echo "Checked out $(git rev-parse HEAD) into ${dest.replace(/"/g, "")}"`);
  return `${lines.join("\n")}\n`;
}

function serverOf(repoUrl: string): string {
  try {
    return new URL("/", repoUrl).toString();
  } catch {
    return "https://github.com/";
  }
}

/** Uploads the local bundle and returns where it is in the guest. */
export async function uploadBundle(session: SshSession, source: LocalCheckoutSource, jobId: string): Promise<string> {
  const remote = `/tmp/solstice-checkout-${jobId}.bundle`;
  await session.upload(remote, source.bundle, 0o600);
  return remote;
}
