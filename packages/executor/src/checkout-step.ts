import type { Checkout, JobRequest } from "@solstice/protocol";
import type { GuestSession } from "@solstice/ssh";

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
 * A git credential helper that answers with the token read from `tokenFile` when git asks: only
 * the file's path is ever on a command line, in git's config or in the environment. `printf` is a
 * shell builtin, so the token is not an argument of any process either.
 */
export function credentialHelper(tokenFile: string): string {
  return `!f() { test "$1" = get || return 0; echo username=x-access-token; printf 'password=%s\\n' "$(cat ${quote(tokenFile)})"; }; f`;
}

/** Where the token of one checkout step goes in the guest (mode 0600, for the job's life). */
export function tokenFilePath(job: JobRequest, stepIndex: number): string {
  return `/tmp/solstice-checkout-${job.jobId}-${stepIndex}.token`;
}

/**
 * The script that puts the job's commit into `dest` in the guest, as actions/checkout does: from
 * the uploaded bundle in a local run, from the repository URL otherwise. `git init` + `fetch`
 * works whether or not the directory already holds a clone; `clean` (the default) first removes
 * untracked files and local changes; `--detach` leaves exactly the requested commit; submodules
 * follow when asked. With a token, git authenticates through `credentialHelper`, for this step
 * through GIT_CONFIG_* variables (which also reach the submodule clones) and for later steps in
 * each repository's own config, as actions/checkout persists its credentials by default.
 */
export function checkoutScript(
  job: JobRequest,
  checkout: Checkout,
  dest: string,
  source: { local?: { bundlePath: string; ref: string }; tokenFile?: string },
): string {
  const depth = checkout.fetchDepth > 0 ? ` --depth=${checkout.fetchDepth}` : "";
  const lines = [`mkdir -p ${quote(dest)}`, `cd ${quote(dest)}`];
  if (source.tokenFile) {
    const helper = quote(credentialHelper(source.tokenFile));
    // An empty helper first drops any helper configured elsewhere in the guest.
    lines.push(
      "export GIT_CONFIG_COUNT=2 GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0= GIT_CONFIG_KEY_1=credential.helper",
      `export GIT_CONFIG_VALUE_1=${helper}`,
    );
  }
  lines.push("git init -q", "git config advice.detachedHead false");
  if (checkout.clean ?? true) {
    lines.push("if git rev-parse -q --verify HEAD >/dev/null; then git clean -ffdx -q && git reset -q --hard HEAD; fi");
  }
  if (source.local) {
    const bundle = quote(source.local.bundlePath);
    const refspec = quote(`+${source.local.ref}:refs/remotes/origin/HEAD`);
    if (checkout.fetchDepth > 0) {
      // A bundle cannot be fetched shallow: it is unpacked into a bare repository first, which a
      // shallow fetch over file:// then reads, so the history is cut as from a forge.
      const bare = quote(`${source.local.bundlePath}.git`);
      lines.push(
        `rm -rf ${bare} && git init -q --bare ${bare}`,
        `git -C ${bare} fetch -q ${bundle} ${quote(`+${source.local.ref}:${source.local.ref}`)}`,
        `git fetch -q${depth} "file://$(cd ${bare} && pwd)" ${refspec}`,
        `rm -rf ${bare}`,
      );
    } else lines.push(`git fetch -q ${bundle} ${refspec}`);
    lines.push("git checkout -q --detach refs/remotes/origin/HEAD", `rm -f ${bundle}`);
  } else {
    const url = checkout.repository
      ? new URL(`${checkout.repository}.git`, serverOf(job.repository?.url ?? "")).toString()
      : (job.repository?.url ?? "");
    if (!url) throw new Error("checkout: the job names no repository URL");
    const own = !checkout.repository || checkout.repository === job.repository?.fullName;
    // Another repository without a ref: its default branch, which its HEAD names.
    const want = checkout.ref || (own ? job.repository?.commitSha || job.repository?.ref : "") || "HEAD";
    lines.push(`git remote add origin ${quote(url)} 2>/dev/null || git remote set-url origin ${quote(url)}`);
    if (source.tokenFile) {
      lines.push("git config --unset-all credential.helper || true");
      lines.push(
        `git config --add credential.helper '' && git config --add credential.helper ${quote(credentialHelper(source.tokenFile))}`,
      );
    }
    lines.push(`git fetch -q${depth} origin ${quote(want)}`, "git checkout -q --detach FETCH_HEAD");
  }
  if (checkout.submodules) {
    const recursive = checkout.submodules === "recursive" ? " --recursive" : "";
    const subDepth = checkout.fetchDepth > 0 ? " --depth=1" : "";
    lines.push(`git submodule sync -q${recursive}`, `git submodule update -q --init --force${subDepth}${recursive}`);
    if (source.tokenFile) {
      const persist = `git config --unset-all credential.helper || true; git config --add credential.helper ''; git config --add credential.helper ${quote(credentialHelper(source.tokenFile))}`;
      lines.push(`git submodule foreach -q${recursive} ${quote(persist)}`);
    }
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
export async function uploadBundle(session: GuestSession, source: LocalCheckoutSource, jobId: string): Promise<string> {
  const remote = `/tmp/solstice-checkout-${jobId}.bundle`;
  await session.upload(remote, source.bundle, 0o600);
  return remote;
}
