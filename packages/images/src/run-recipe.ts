import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { finished } from "node:stream/promises";
import type { Logger } from "pino";
import { ImageBuildError } from "./errors.ts";
import type { ImageProgress } from "./local-image.ts";

export interface RunRecipeOptions {
  label: string;
  script: string;
  outDir: string;
  scratchDir: string;
  env: Record<string, string>;
  signal?: AbortSignal;
  /** The whole build's deadline. */
  timeoutMs: number;
  /** File that receives every line the recipe prints (its progress lines too), for a failed build's logs. */
  outputLog: string;
  progress?: ImageProgress;
  log?: Logger;
}

/** Lines of build output kept for the error message; older ones are dropped. */
const logTailLines = 60;
/** After SIGTERM, how long the build's process group gets before SIGKILL. */
const killGraceMs = 5_000;

/**
 * Runs a recipe script in its own process group (so an abort also stops debootstrap, apt and
 * their children), turns its "::phase NAME DETAIL" lines into progress events and keeps the
 * last lines of its output for the error message.
 */
export async function runRecipe(options: RunRecipeOptions): Promise<void> {
  const { label, log } = options;
  options.signal?.throwIfAborted();
  const child = spawn("bash", [options.script, options.outDir, options.scratchDir], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env, LC_ALL: "C.UTF-8", DEBIAN_FRONTEND: "noninteractive" },
  });
  const output = createWriteStream(options.outputLog);
  // A log that cannot be written must not crash the process or fail the build it describes.
  output.on("error", (error) => log?.warn({ image: label, err: error }, "could not write the build's output log"));
  const record = (line: string): void => {
    if (!output.writableEnded) output.write(`${line}\n`);
  };
  const tail: string[] = [];
  const keep = (line: string): void => {
    record(line);
    tail.push(line);
    if (tail.length > logTailLines) tail.shift();
  };
  createInterface({ input: child.stdout }).on("line", (line) => {
    const phase = /^::phase (\S+) ?(.*)$/.exec(line);
    if (phase?.[1]) {
      record(line);
      const detail = phase[2] ?? "";
      log?.info({ image: label, phase: phase[1], detail }, "image build phase");
      options.progress?.({ phase: phase[1], ...(detail ? { detail } : {}) });
      return;
    }
    keep(line);
    log?.debug({ image: label, line }, "image build output");
  });
  createInterface({ input: child.stderr }).on("line", (line) => {
    keep(line);
    log?.debug({ image: label, line, stream: "stderr" }, "image build output");
  });

  let stopReason: "aborted" | "timeout" | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (reason: "aborted" | "timeout"): void => {
    if (stopReason || child.pid === undefined) return;
    stopReason = reason;
    signalGroup(child.pid, "SIGTERM");
    killTimer = setTimeout(() => signalGroup(child.pid as number, "SIGKILL"), killGraceMs);
  };
  const onAbort = (): void => stop("aborted");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  const deadline = setTimeout(() => stop("timeout"), options.timeoutMs);

  try {
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, signal) => resolve({ code, signal }));
    });
    if (stopReason === "aborted") throw options.signal?.reason ?? new Error("aborted");
    if (stopReason === "timeout") {
      throw new ImageBuildError(label, `took longer than ${Math.round(options.timeoutMs / 1000)} s`, tail.join("\n"));
    }
    if (exit.code !== 0) {
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
      const last = tail.at(-1) ?? "(no output)";
      throw new ImageBuildError(label, `${options.script} ${how}: ${last}`, tail.join("\n"));
    }
  } finally {
    clearTimeout(deadline);
    clearTimeout(killTimer);
    options.signal?.removeEventListener("abort", onAbort);
    output.end();
    // Its error, if any, was logged above.
    await finished(output).catch(() => {});
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group has already exited.
  }
}
