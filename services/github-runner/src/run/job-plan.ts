import { randomUUID } from "node:crypto";
import {
  type ActionsRuntime,
  ActionsRuntimeSchema,
  checkoutTokenContext,
  create,
  type FleetKeyring,
  type JobRequest,
  JobSource,
  runtimeTokenContext,
} from "@solstice/protocol";
import {
  DEFAULT_JOB_TIMEOUT_MINUTES,
  DEFAULT_SHELL,
  type Env,
  type ForgeService,
  type PlannedJob,
  type PlannedStepDef,
  parseCondition,
  resolveShell,
  toJobRequest,
  unsupportedActionAdvice,
  type Workflow,
  WorkflowError,
} from "@solstice/workflow";
import { prop, str } from "../client/wire-json.ts";
import type { ActionReference } from "./action-download-info.ts";
import { githubToken, type JobMessage, secretsOf, variable } from "./job-message.ts";
import { mappingEntries, readsSecrets, readToken, wholeSecret } from "./template-token.ts";

/** One step as GitHub's timeline knows it: its record id (the step's id in the message) and name. */
export interface StepInfo {
  recordId: string;
  name: string;
  /** The step's context name (its `id:`, or GitHub's generated `__run`-style name). */
  refName: string;
}

export type JobPlan =
  | {
      ok: true;
      request: JobRequest;
      steps: StepInfo[];
      /** The repository actions of the steps, to resolve through GitHub before the job runs. */
      actions: ActionReference[];
    }
  | { ok: false; problems: string[]; steps: StepInfo[] };

const SUPPORTED =
  "Solstice runs `run:` steps, the built-in actions/checkout, and JavaScript and composite actions from a repository";
/** GitHub hosts artifacts and caches itself; the job message says where (actionsRuntimeOf). */
const GITHUB_SERVICES: ReadonlySet<ForgeService> = new Set(["artifacts"]);
const CHECKOUT_INPUTS = new Set(["repository", "ref", "path", "fetch-depth"]);

export interface PlanOptions {
  owner: string;
  /** The fleet label that runs this runner's jobs (GitHub does not say which runs-on label matched). */
  fleetLabel: string;
  jobId?: string;
  keyring?: Pick<FleetKeyring, "seal">;
}

class Problems {
  readonly list: string[] = [];
  add(where: string, message: string): void {
    this.list.push(`${where}: ${message}`);
  }
}

/**
 * A token as text for the executor: literals as they are, expressions as `${{ … }}` for run time.
 * With `secrets`, the text may read secrets (env, run, working-directory: the executor has them,
 * sealed, and masks them); elsewhere (checkout inputs, job outputs) reading one is a problem.
 */
function tokenText(
  token: unknown,
  where: string,
  problems: Problems,
  { secrets = false }: { secrets?: boolean } = {},
): string | undefined {
  const value = readToken(token);
  switch (value.kind) {
    case "literal":
      return value.text;
    case "expression":
      if (!secrets && readsSecrets(value.expression)) {
        problems.add(
          where,
          `secrets cannot be read here (\${{ ${value.expression} }}); they can in env, run and working-directory`,
        );
        return undefined;
      }
      return `\${{ ${value.expression} }}`;
    default:
      problems.add(where, `must be a single value, not ${value.kind === "other" ? value.what : `a ${value.kind}`}`);
      return undefined;
  }
}

function envOf(token: unknown, where: string, problems: Problems, into: Env = {}): Env {
  for (const [name, valueToken] of mappingEntries(token)) {
    const value = readToken(valueToken);
    const secret = value.kind === "expression" ? wholeSecret(value.expression) : undefined;
    if (secret !== undefined) {
      into[name] = { fromSecret: secret };
      continue;
    }
    const text = tokenText(valueToken, `${where}.env.${name}`, problems, { secrets: true });
    if (text !== undefined) into[name] = text;
  }
  return into;
}

function literalOf(token: unknown): string | undefined {
  const value = readToken(token);
  if (value.kind === "literal") return value.text;
  // GitHub sends a plain number such as timeout-minutes: 5 as an expression "5".
  if (value.kind === "expression" && /^\s*[\d.]+\s*$/.test(value.expression)) return value.expression.trim();
  return undefined;
}

function refType(reference: unknown): string {
  const type = prop(reference, "type");
  if (type === 1) return "repository";
  if (type === 2) return "containerregistry";
  if (type === 3) return "script";
  return (str(type) ?? "").toLowerCase();
}

function usesText(reference: unknown): string {
  const type = refType(reference);
  if (type === "containerregistry") return `docker://${str(prop(reference, "image")) ?? ""}`;
  const name = str(prop(reference, "name")) ?? "";
  const ref = str(prop(reference, "ref")) ?? "";
  const path = str(prop(reference, "path")) ?? "";
  if ((str(prop(reference, "repositoryType")) ?? "").toLowerCase() === "self") return `./${path}`;
  return `${name}${path ? `/${path}` : ""}${ref ? `@${ref}` : ""}`;
}

/**
 * Turns GitHub's job message into the JobRequest the fleet runs: `run` scripts and the built-in
 * checkout, with the job's env, defaults, contexts, outputs and (sealed) secrets. What Solstice
 * cannot run — any other `uses:`, job containers, service containers — is every problem listed,
 * so the job fails at once with all the reasons in GitHub's log and no VM is booted.
 */
export function planJob(message: JobMessage, opts: PlanOptions): JobPlan {
  const problems = new Problems();
  const steps: StepInfo[] = [];
  if (message.jobContainer !== null && readToken(message.jobContainer).kind !== "literal") {
    problems.add(
      "container",
      "job containers are not supported: Solstice runs steps directly in a VM of the runner's label; install what you need from a run: step",
    );
  }
  if (message.jobServiceContainers !== null && readToken(message.jobServiceContainers).kind !== "literal") {
    problems.add(
      "services",
      "service containers are not supported: each Solstice job runs in its own VM; start the service from a run: step",
    );
  }

  const jobEnv: Env = {};
  for (const token of message.environmentVariables) envOf(token, "env", problems, jobEnv);
  let defaultShell: string | undefined;
  let defaultDir: string | undefined;
  for (const token of message.defaults) {
    for (const [key, value] of mappingEntries(token)) {
      if (key !== "run") continue;
      for (const [name, v] of mappingEntries(value)) {
        if (name === "shell") defaultShell = literalOf(v);
        if (name === "working-directory") defaultDir = tokenText(v, "defaults.run.working-directory", problems);
      }
    }
  }

  const planned: PlannedStepDef[] = [];
  const actions: ActionReference[] = [];
  message.steps.forEach((step, index) => {
    const reference = prop(step, "reference");
    const kind = refType(reference);
    const inputs = new Map(mappingEntries(prop(step, "inputs")));
    const refName = str(prop(step, "contextName")) ?? str(prop(step, "name")) ?? `__step${index}`;
    const displayName =
      str(prop(step, "displayName")) ??
      (kind === "script"
        ? `Run ${(literalOf(inputs.get("script")) ?? "").split("\n")[0]?.trim() ?? ""}`
        : `Run ${usesText(reference)}`);
    steps.push({ recordId: str(prop(step, "id")) ?? randomUUID(), name: displayName, refName });
    const where = `steps[${index}] (${displayName})`;
    const stepType = prop(step, "type");
    if (stepType !== undefined && stepType !== 4 && str(stepType)?.toLowerCase() !== "action") {
      problems.add(where, `step type ${str(stepType) ?? "(unreadable)"} is not supported: ${SUPPORTED}`);
      return;
    }
    const condition = str(prop(step, "condition")) ?? "";
    if (condition !== "") {
      try {
        parseCondition(condition);
      } catch (error) {
        problems.add(`${where}.if`, (error as Error).message);
      }
    }
    const continueText = literalOf(prop(step, "continueOnError")) ?? "false";
    if (!["true", "false", ""].includes(continueText.toLowerCase())) {
      problems.add(`${where}.continue-on-error`, "must be true or false (an expression is not supported)");
    }
    const timeoutText = literalOf(prop(step, "timeoutInMinutes"));
    const timeoutMinutes = timeoutText === undefined || timeoutText === "" ? undefined : Number(timeoutText);
    if (timeoutMinutes !== undefined && !Number.isFinite(timeoutMinutes)) {
      problems.add(`${where}.timeout-minutes`, "must be a number");
    }
    const common = {
      index,
      name: displayName,
      id: refName,
      // Merged as the workflow planner merges them: job env < step env.
      env: { ...jobEnv, ...envOf(prop(step, "environment"), where, problems) },
      continueOnError: continueText.toLowerCase() === "true",
      ...(condition ? { condition } : {}),
      ...(timeoutMinutes !== undefined && Number.isFinite(timeoutMinutes) ? { timeoutMinutes } : {}),
    };
    if (kind === "script") {
      const script = tokenText(inputs.get("script"), `${where}.run`, problems, { secrets: true }) ?? "";
      const shellName = literalOf(inputs.get("shell")) || defaultShell;
      let shell = DEFAULT_SHELL;
      if (shellName) {
        const resolved = resolveShell(shellName.trim());
        if (resolved.ok) shell = resolved.template;
        else problems.add(`${where}.shell`, resolved.message);
      }
      const dir = inputs.has("workingDirectory")
        ? tokenText(inputs.get("workingDirectory"), `${where}.working-directory`, problems, { secrets: true })
        : defaultDir;
      planned.push({ ...common, kind: "run", script, shell, ...(dir ? { workingDirectory: dir } : {}) });
      return;
    }
    const uses = usesText(reference);
    const isCheckout =
      kind === "repository" &&
      (str(prop(reference, "name")) ?? "").toLowerCase() === "actions/checkout" &&
      !str(prop(reference, "path"));
    if (!isCheckout) {
      const repositoryAction = kind === "repository" && !uses.startsWith("./");
      if (!repositoryAction || unsupportedActionAdvice(uses, GITHUB_SERVICES) !== undefined) {
        problems.add(
          `${where}.uses`,
          `action ${uses} is not supported: ${SUPPORTED}; replace it with run: steps that do the same`,
        );
        return;
      }
      // Fetched by the VM host from the forge's own URL (JobRequest.actions_url), like Forgejo's.
      const with_: Env = {};
      for (const [name, token] of inputs) {
        const value = readToken(token);
        const secret = value.kind === "expression" ? wholeSecret(value.expression) : undefined;
        if (secret !== undefined) with_[name] = { fromSecret: secret };
        else {
          const text = tokenText(token, `${where}.with.${name}`, problems);
          if (text !== undefined) with_[name] = text;
        }
      }
      planned.push({ ...common, kind: "action", uses, inputs: with_ });
      actions.push({
        nameWithOwner: str(prop(reference, "name")) ?? "",
        ref: str(prop(reference, "ref")) ?? "",
        path: str(prop(reference, "path")) ?? "",
      });
      return;
    }
    const text = (name: string) =>
      inputs.has(name) ? tokenText(inputs.get(name), `${where}.with.${name}`, problems) : undefined;
    for (const name of inputs.keys()) {
      if (!CHECKOUT_INPUTS.has(name)) {
        problems.add(`${where}.with.${name}`, `the built-in checkout takes only ${[...CHECKOUT_INPUTS].join(", ")}`);
      }
    }
    const depthText = text("fetch-depth");
    const fetchDepth = depthText === undefined || depthText === "" ? 1 : Number(depthText);
    if (!Number.isInteger(fetchDepth) || fetchDepth < 0)
      problems.add(`${where}.with.fetch-depth`, "must be a whole number");
    const repository = text("repository");
    const ref = text("ref");
    const path = text("path");
    planned.push({
      ...common,
      kind: "checkout",
      fetchDepth: Number.isInteger(fetchDepth) && fetchDepth >= 0 ? fetchDepth : 1,
      ...(repository ? { repository } : {}),
      ...(ref ? { ref } : {}),
      ...(path ? { path } : {}),
    });
  });

  const outputs: Record<string, string> = {};
  for (const [name, token] of mappingEntries(message.jobOutputs)) {
    const text = tokenText(token, `outputs.${name}`, problems);
    if (text !== undefined) outputs[name] = text;
  }
  if (problems.list.length > 0) return { ok: false, problems: problems.list, steps };

  const github = { ...((message.contexts.github as Record<string, unknown> | null) ?? {}) };
  // The job's token never travels in plain text: the checkout gets it sealed.
  delete github.token;
  const context = (name: string) => {
    const value = message.contexts[name];
    return value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  };
  const workflow: Workflow = {
    name: str(github.workflow) ?? "",
    file: message.fileTable[0] ?? str(github.workflow_ref) ?? "",
    on: null,
    jobs: [],
    contexts: {
      github,
      ...(context("vars") ? { vars: context("vars") } : {}),
      ...(context("matrix") ? { matrix: context("matrix") } : {}),
      ...(context("strategy") ? { strategy: context("strategy") } : {}),
      ...(context("needs") ? { needs: context("needs") } : {}),
      ...(context("inputs") ? { inputs: context("inputs") } : {}),
    },
  };
  const job: PlannedJob = {
    key: message.jobName || str(github.job) || "job",
    name: message.jobDisplayName || message.jobName,
    runsOn: opts.fleetLabel,
    timeoutMinutes: DEFAULT_JOB_TIMEOUT_MINUTES,
    continueOnError: false,
    env: jobEnv,
    needs: [],
    outputs,
    steps: planned,
  };
  const serverUrl = (str(github.server_url) ?? "https://github.com").replace(/\/+$/, "");
  const repository = str(github.repository) ?? "";
  const secrets = secretsOf(message);
  let request: JobRequest;
  try {
    request = toJobRequest(workflow, job, {
      source: JobSource.GITHUB,
      owner: opts.owner,
      ...(opts.jobId ? { jobId: opts.jobId } : {}),
      repository: {
        url: repository ? `${serverUrl}/${repository}.git` : "",
        fullName: repository,
        commitSha: str(github.sha) ?? "",
        ref: str(github.ref) ?? "",
      },
      actionsUrl: serverUrl,
      ...(opts.keyring ? { secrets: { values: secrets, keyring: opts.keyring } } : {}),
    });
  } catch (error) {
    if (error instanceof WorkflowError) {
      return {
        ok: false,
        problems: [
          error.message
            .replace(/^\[[a-z_]+\] /, "")
            .replace(/ciadm run --secret \S+/, "give the github-runner the fleet key (SOLSTICE_FLEET_KEYS_FILE)"),
        ],
        steps,
      };
    }
    throw error;
  }
  const token = githubToken(message);
  if (token && opts.keyring) request.checkoutToken = opts.keyring.seal(token, checkoutTokenContext(request.jobId));
  request.actionsRuntime = actionsRuntimeOf(message, request.jobId, opts.keyring);
  return { ok: true, request, steps, actions };
}

/**
 * What GitHub's runner gives JavaScript actions from the job message
 * (Runner.Worker/Handlers/NodeScriptActionHandler.cs): ACTIONS_RUNTIME_URL from the
 * SystemVssConnection endpoint's URL (or its data's PipelinesServiceUrl), ACTIONS_RUNTIME_TOKEN
 * from its access token, ACTIONS_CACHE_URL, ACTIONS_RESULTS_URL and ACTIONS_ID_TOKEN_REQUEST_URL
 * from its data, ACTIONS_CACHE_SERVICE_V2 and ACTIONS_CACHE_MODE from the variables
 * `actions_uses_cache_service_v2` and `actions_cache_mode`. The token is sealed like a secret.
 */
function actionsRuntimeOf(
  message: JobMessage,
  jobId: string,
  keyring: Pick<FleetKeyring, "seal"> | undefined,
): ActionsRuntime {
  const vss = message.systemVss;
  return create(ActionsRuntimeSchema, {
    runtimeUrl: vss.pipelinesServiceUrl || vss.url,
    resultsUrl: vss.resultsServiceUrl,
    cacheUrl: vss.cacheServerUrl,
    idTokenRequestUrl: vss.generateIdTokenUrl,
    cacheServiceV2: (variable(message, "actions_uses_cache_service_v2") ?? "").toLowerCase() === "true",
    cacheMode: variable(message, "actions_cache_mode") ?? "",
    ...(vss.token && keyring ? { token: keyring.seal(vss.token, runtimeTokenContext(jobId)) } : {}),
  });
}
