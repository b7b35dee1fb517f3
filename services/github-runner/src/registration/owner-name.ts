import { createHash } from "node:crypto";
import type { RunnerRegistration } from "./runner-files.ts";

/**
 * The default owner name of a registered runner: `github-<instance>-<runner id>`. Runner ids are
 * unique only within one GitHub (github.com and a GitHub Enterprise Server, or two servers, hand
 * out the same ids), so the name also carries a short hash of the instance's origin: two runners on
 * one fleet namespace never share an owner queue, and so never take each other's job events.
 */
export function defaultOwnerName(registration: Pick<RunnerRegistration, "settings" | "credentials">): string {
  const { settings, credentials } = registration;
  const instance = originOf(settings.gitHubUrl) ?? originOf(settings.serverUrlV2) ?? originOf(settings.serverUrl);
  const source = instance ?? originOf(credentials.authorizationUrl) ?? "unknown";
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 10);
  return `github-${hash}-${settings.agentId}`;
}

function originOf(url: string): string | undefined {
  if (url === "") return undefined;
  try {
    return new URL(url).origin.toLowerCase();
  } catch {
    return undefined;
  }
}
