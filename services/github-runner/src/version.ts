/**
 * The runner version we present to GitHub: GitHub refuses runners older than its minimum, and we
 * never self-update (every registration says disableUpdate), so this follows the official runner
 * release whose protocol this client was checked against.
 */
export const RUNNER_VERSION = "2.336.0";

/** Our own product version, in the User-Agent. */
export const SOLSTICE_VERSION = "0.1.0";

export const USER_AGENT = `solstice-github-runner/${SOLSTICE_VERSION} (GitHubActionsRunner-compatible/${RUNNER_VERSION})`;

/** What we report as the runner's platform: jobs run in Linux, illumos or BSD VMs, reached from a Linux service. */
export const RUNNER_OS = "Linux";
export const RUNNER_ARCH = "X64";
