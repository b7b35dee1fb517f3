import type { ActionArchive, JobRequest } from "@solstice/protocol";
import type { ActionReference } from "@solstice/workflow";
import type { FetchedAction } from "./action-store.ts";
import type { ActionProvider } from "./job-actions.ts";

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * Where each `uses:` of one job comes from, the forge's way, and with which token: an archive
 * the runner resolved through the forge (GitHub's action download info, with its download token,
 * or the job's own token when the forge gave none, as GitHub's runner does), else git from the
 * reference's own server or the job's actions URL (Forgejo/Gitea), with the job's forge token only
 * for that forge. Tokens authenticate on the host and never reach the guest. Every action it
 * fetched is held by the host's cache until `release`.
 */
export class JobActionSources {
  private readonly forge: string | undefined;
  private readonly archives: Map<string, ActionArchive>;
  private readonly fetched: FetchedAction[] = [];

  constructor(
    private readonly job: JobRequest,
    private readonly provider: ActionProvider,
    private readonly signal: AbortSignal,
    /** The job's own forge token. */
    private readonly forgeToken?: string,
    /** The unsealed download token of an archive the runner resolved. */
    private readonly archiveToken?: (archive: ActionArchive) => string | undefined,
  ) {
    this.forge = originOf(job.repository?.url ?? "");
    this.archives = new Map(job.actionArchives.map((archive) => [archive.reference, archive]));
  }

  async fetch(reference: Extract<ActionReference, { kind: "repository" }>): Promise<FetchedAction> {
    const { owner, name, ref } = reference;
    const archive = reference.baseUrl === undefined ? this.archives.get(`${owner}/${name}@${ref}`) : undefined;
    let fetched: FetchedAction;
    if (archive) {
      const token = this.archiveToken?.(archive) ?? this.forgeToken;
      fetched = await this.provider.store.fetchArchive(
        {
          repository: archive.resolvedRepository || `${owner}/${name}`,
          ref,
          commit: archive.commitSha,
          tarballUrl: archive.tarballUrl,
          ...(token ? { token } : {}),
        },
        this.signal,
      );
    } else {
      const baseUrl = reference.baseUrl ?? (this.job.actionsUrl || this.provider.defaultUrl);
      // The forge's token goes only to the forge that issued it, as the Forgejo runner does.
      const token =
        this.forgeToken && this.forge !== undefined && originOf(baseUrl) === this.forge ? this.forgeToken : undefined;
      fetched = await this.provider.store.fetch(
        { baseUrl, owner, name, ref, ...(token ? { token } : {}) },
        this.signal,
      );
    }
    this.fetched.push(fetched);
    return fetched;
  }

  /** The job failed before it ran: the cache may evict what it fetched again. */
  release(): void {
    for (const action of this.fetched.splice(0)) this.provider.store.release(action);
  }
}
