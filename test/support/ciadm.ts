import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const projectRoot = path.resolve(fileURLToPath(import.meta.url), "../../..");
const ciadm = path.join(projectRoot, "packages/ciadm/bin/ciadm.js");

export interface CiadmRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `ciadm` binary as a user would, without colour, and collects what it prints. */
export function runCiadm(args: string[], cwd: string, env: Record<string, string> = {}): Promise<CiadmRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ciadm, ...args], { cwd, env: { ...process.env, ...env, NO_COLOR: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts the `ciadm` binary and lets a test wait for what it prints on stderr while it runs. */
export function followCiadm(
  args: string[],
  env: Record<string, string> = {},
): {
  done: Promise<CiadmRun>;
  stderrMatches(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Sends a signal, as Ctrl-C (SIGINT) or a service manager (SIGTERM) would. */
  kill(signal: NodeJS.Signals): void;
} {
  const child = spawn(process.execPath, [ciadm, ...args], {
    cwd: projectRoot,
    env: { ...process.env, ...env, NO_COLOR: "1" },
  });
  let stdout = "";
  let stderr = "";
  const listeners = new Set<() => void>();
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
    for (const wake of listeners) wake();
  });
  const done = new Promise<CiadmRun>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code, stdout, stderr });
      for (const wake of listeners) wake();
    });
  });
  return {
    done,
    kill: (signal) => void child.kill(signal),
    stderrMatches(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => finish(new Error(`ciadm printed no ${pattern} in ${timeoutMs} ms: ${stderr}`)),
          timeoutMs,
        );
        const check = () => {
          if (pattern.test(stderr)) finish(undefined);
          else if (child.exitCode !== null) finish(new Error(`ciadm exited (${child.exitCode}): ${stderr}`));
        };
        const finish = (error: Error | undefined) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (error) reject(error);
          else resolve();
        };
        listeners.add(check);
        check();
      });
    },
  };
}
