import { type JobRequest, JobSource } from "@solstice/protocol";
import type { SecretMasker } from "./secret-masker.ts";

/** How this host's jobs reach their repository's cache (packages/job-cache; docs/decisions/0007). */
export interface JobCacheAccess {
  /**
   * Opens `scope` (a repository) to one job: `url` is the ACTIONS_CACHE_URL its JavaScript actions
   * get, with `credential` inside it; `close` ends the credential when the job ends.
   */
  open(scope: string): { readonly url: string; readonly credential: string; close(): Promise<void> };
}

/** A job's way into the cache while it runs: the variables its actions get, and the end of it. */
export interface JobCacheSession {
  /** For JavaScript actions only, as GitHub's runner gives ACTIONS_* variables to actions only. */
  readonly variables: Record<string, string>;
  close(): Promise<void>;
}

const NO_CACHE: JobCacheSession = { variables: {}, close: async () => {} };

/**
 * Opens the job's repository scope when the job has actions to use it and its forge serves no
 * cache of its own: Forgejo/Gitea jobs and local runs. A GitHub job keeps the cache GitHub hosts
 * (its own ACTIONS_CACHE_URL/ACTIONS_RESULTS_URL), so none is opened for it. The credential is
 * masked in everything the job prints.
 */
export function openJobCache(
  access: JobCacheAccess | undefined,
  job: Pick<JobRequest, "source" | "repository">,
  usesActions: boolean,
  masker: Pick<SecretMasker, "add">,
): JobCacheSession {
  if (!access || !usesActions || job.source === JobSource.GITHUB) return NO_CACHE;
  const opening = access.open(cacheScope(job));
  masker.add(opening.credential);
  return { variables: { ACTIONS_CACHE_URL: opening.url }, close: () => opening.close() };
}

/**
 * A repository's cache scope: its forge's host and its full name, so two forges' `acme/app` never
 * share entries. A local run whose remote is not a URL is scoped by its name alone.
 */
export function cacheScope(job: Pick<JobRequest, "repository">): string {
  const url = job.repository?.url ?? "";
  const host = URL.canParse(url) ? new URL(url).host : "";
  const name = job.repository?.fullName || "local/workspace";
  return `${host ? `${host}/` : ""}${name}`.toLowerCase();
}
