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
