import { GitHubRunnerError } from "../errors.ts";

export interface GitHubScope {
  /** As the user gave it, without a trailing slash: https://github.com/acme/app. */
  url: string;
  /** GitHub REST's base: https://api.github.com, or {scheme}://{host}/api/v3 on GHES (and the fake). */
  api: string;
  kind: "repository" | "organization" | "enterprise";
  /** The REST path of the scope: repos/acme/app, orgs/acme, enterprises/ent. */
  path: string;
}

function hosted(host: string): boolean {
  const h = host.toLowerCase();
  return (
    h === "github.com" ||
    h === "www.github.com" ||
    h === "github.localhost" ||
    h.endsWith(".ghe.com") ||
    h.endsWith(".ghe.localhost")
  );
}

/** Where GitHub REST lives for a repository, organization or enterprise URL (as the official runner decides). */
export function parseGitHubUrl(input: string, env: NodeJS.ProcessEnv = process.env): GitHubScope {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new GitHubRunnerError(
      "invalid_settings",
      `--url "${input}" is not a URL`,
      "give the repository or organization page, e.g. https://github.com/acme/app",
    );
  }
  const parts = url.pathname.split("/").filter(Boolean);
  const clean = `${url.protocol}//${url.host}${parts.length ? `/${parts.join("/")}` : ""}`;
  const api =
    hosted(url.hostname) && env.GITHUB_ACTIONS_RUNNER_FORCE_GHES !== "1"
      ? `${url.protocol}//api.${url.host}`
      : `${url.protocol}//${url.host}/api/v3`;
  if (parts.length === 2 && parts[0]?.toLowerCase() === "enterprises") {
    return { url: clean, api, kind: "enterprise", path: `enterprises/${parts[1]}` };
  }
  if (parts.length === 2) return { url: clean, api, kind: "repository", path: `repos/${parts[0]}/${parts[1]}` };
  if (parts.length === 1) return { url: clean, api, kind: "organization", path: `orgs/${parts[0]}` };
  throw new GitHubRunnerError(
    "invalid_settings",
    `--url "${input}" names no repository, organization or enterprise`,
    "use https://github.com/OWNER/REPO, https://github.com/ORG or https://github.com/enterprises/NAME",
  );
}
