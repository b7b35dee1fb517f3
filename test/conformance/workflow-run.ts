import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  type ActionProvider,
  attachWarmVm,
  JobEventStream,
  type JobResult,
  runJob,
  type WarmVm,
} from "@solstice/executor";
import { type CatalogEntry, ensureImage, loadImageCatalog } from "@solstice/images";
import {
  checkoutTokenContext,
  type FleetKeyring,
  type JobEvent,
  type JobRequest,
  type JobSource,
  LogStream,
  Outcome,
} from "@solstice/protocol";
import { connectSsh } from "@solstice/ssh";
import { createQemuBackend, type VmBackend } from "@solstice/vm";
import { parseWorkflow, toJobRequest } from "@solstice/workflow";
import { type Logger, pino } from "pino";
import { assertStartedInMode, RESTORES_SNAPSHOTS, START_MODE, TEST_LABEL } from "../support/start-mode.ts";

/** One workflow's single job, run end to end in a real tiny VM (TCG), with what it produced. */
export interface ConformanceRun {
  readonly request: JobRequest;
  readonly result: JobResult;
  readonly events: JobEvent[];
  /** Every log line of the job, in order. */
  readonly text: string;
  /** [index, outcome, conclusion] per step, with the outcome names of the protocol. */
  readonly outcomes: [number, string, string][];
  /** What one step printed (stdout and stderr, without Solstice's own lines). */
  stepLog(index: number): string[];
}

export interface ConformanceOptions {
  readonly workflow: string;
  readonly file: string;
  readonly source: JobSource;
  readonly github: Record<string, unknown>;
  readonly repository: { url: string; fullName: string; commitSha: string; ref: string };
  /** Secrets the job may read, sealed with `keyring`. */
  readonly secrets?: { values: Record<string, string>; keyring: FleetKeyring };
  /** The job's own checkout token, sealed with the secrets' keyring as a runner seals the forge's token. */
  readonly checkoutToken?: string;
  /** Changes the guest after it boots and before the job sees it (e.g. removes a program). */
  readonly afterBoot?: string;
  /** Where the job's `uses:` actions come from. */
  readonly actions?: ActionProvider;
  /** Cancels the job (e.g. partway, to see what runs after a cancel). */
  readonly signal?: AbortSignal;
  /** Sees each event as the job publishes it. */
  readonly onEvent?: (event: JobEvent) => void;
  /** Changes the test label's images.yaml entry for this run (e.g. declares a Node runtime). */
  readonly catalogEntry?: (entry: CatalogEntry) => CatalogEntry;
}

/** A backend whose images come from images.yaml with the test label's entry changed. */
function changedCatalog(backend: VmBackend, change: (entry: CatalogEntry) => CatalogEntry, log: Logger): VmBackend {
  return {
    ...backend,
    ensureImage: async (label, progress) => {
      const catalog = await loadImageCatalog();
      const images = catalog.images.map((entry) => (entry.label === label ? change(entry) : entry));
      return ensureImage(label, { catalog: { ...catalog, images }, log, ...(progress ? { progress } : {}) });
    },
  };
}

/** A backend whose guests get `command` run over SSH once they boot. */
function changedGuests(backend: VmBackend, command: string): VmBackend {
  return {
    name: backend.name,
    ensureImage: (image, progress) => backend.ensureImage(image, progress),
    reapOrphans: () => backend.reapOrphans(),
    boot: async (spec) => {
      const vm = await backend.boot(spec);
      // A session over TCP is closed after the change, so the job's own connection sees the changed
      // guest (a connection authenticated before keeps root's old login shell, say). A session the
      // guest served on its agent's channel cannot be opened again, so it goes on to the job.
      const channel = vm.takeSession?.();
      const session = channel ?? (await connectSsh(vm.ssh, { signal: spec.signal }));
      try {
        const result = await session.exec(command, { signal: spec.signal });
        if (result.exitCode !== 0) throw new Error(`changing the guest failed (exit ${result.exitCode})`);
      } catch (error) {
        session.close();
        await vm.destroy();
        throw error;
      }
      if (!channel) session.close();
      let kept = channel;
      // A changed guest is no longer what its identity says: later jobs must not reuse what
      // an earlier one learned about an unchanged guest of the same image.
      return {
        ...vm,
        guestIdentity: undefined,
        takeSession: () => {
          const taken = kept;
          kept = undefined;
          return taken?.open ? taken : undefined;
        },
      };
    },
  };
}

/** A VM booted the way a warm pool boots one, with the session it keeps open and the basics it learns. */
async function bootWarmVm(backend: VmBackend, label: string, log: Logger): Promise<WarmVm> {
  const image = await backend.ensureImage(label);
  const vm = await backend.boot({ vmName: `pool-${label}-conformance`, image, pooled: true, log });
  try {
    return await attachWarmVm(vm);
  } catch (error) {
    await vm.destroy();
    throw error;
  }
}

export async function runConformanceWorkflow(options: ConformanceOptions): Promise<ConformanceRun> {
  const runDir = await mkdtemp(path.join(tmpdir(), "solstice-conformance-"));
  try {
    const workflow = parseWorkflow(options.workflow, { file: options.file, contexts: { github: options.github } });
    const [job] = workflow.jobs;
    if (!job) throw new Error("the workflow has no job");
    const request = toJobRequest(workflow, job, {
      source: options.source,
      owner: "conformance",
      repository: options.repository,
      ...(options.secrets ? { secrets: options.secrets } : {}),
    });
    if (options.checkoutToken !== undefined && options.secrets) {
      request.checkoutToken = options.secrets.keyring.seal(options.checkoutToken, checkoutTokenContext(request.jobId));
    }
    const events: JobEvent[] = [];
    const stream = new JobEventStream(request.jobId, request.attempt, async (event) => {
      events.push(event);
      options.onEvent?.(event);
    });
    request.runsOn = request.runsOn === "tiny" ? TEST_LABEL : request.runsOn;
    const log = pino({ level: "silent" });
    const qemu = createQemuBackend({ log, accelerator: "tcg", runRoot: runDir, snapshots: RESTORES_SNAPSHOTS });
    const cataloged = options.catalogEntry ? changedCatalog(qemu, options.catalogEntry, log) : qemu;
    const backend = options.afterBoot ? changedGuests(cataloged, options.afterBoot) : cataloged;
    const warm = START_MODE === "warm" ? await bootWarmVm(backend, request.runsOn, log) : undefined;
    const result = await runJob({
      job: request,
      backend,
      events: stream,
      signal: options.signal ?? new AbortController().signal,
      log,
      ...(options.secrets ? { keyring: options.secrets.keyring } : {}),
      ...(warm ? { warm } : {}),
      ...(options.actions ? { actions: options.actions } : {}),
    });
    const lines = events.flatMap(({ body }) =>
      body.case === "log"
        ? body.value.lines.map((l) => ({
            step: body.value.stepIndex,
            text: l.text,
            system: l.stream === LogStream.SYSTEM,
          }))
        : [],
    );
    // A job refused before its VM boots (e.g. a Docker action) has no start mode to show.
    if (result.bootMs !== undefined) assertStartedInMode(lines.map((l) => l.text));
    return {
      request,
      result,
      events,
      text: lines.map((l) => l.text).join("\n"),
      outcomes: result.steps.map((s) => [s.index, Outcome[s.outcome], Outcome[s.conclusion]]),
      stepLog: (index) => lines.filter((l) => l.step === index && !l.system).map((l) => l.text),
    };
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
}

/** `NAME=value` lines of a step's log as a map (values that span lines are cut at the first). */
export function variablesIn(lines: readonly string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of lines) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match?.[1] !== undefined) vars[match[1]] = match[2] ?? "";
  }
  return vars;
}
