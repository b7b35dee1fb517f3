import { spawn } from "node:child_process";
import { VmError } from "./errors.ts";

/** Most output kept from a helper command (for its error message). */
const MAX_OUTPUT_BYTES = 64 * 1024;

/** Runs a short host command (qemu-img, genisoimage, …) with a deadline; rejects with its stderr on failure. */
export function runCommand(
  file: string,
  args: readonly string[],
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ["ignore", "pipe", "pipe"],
      timeout: opts.timeoutMs,
      killSignal: "SIGKILL",
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      if (stdout.length < MAX_OUTPUT_BYTES) stdout += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      if (stderr.length < MAX_OUTPUT_BYTES) stderr += c.toString("utf8");
    });
    child.on("error", (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      reject(
        new VmError(
          code === "ABORT_ERR" ? "aborted" : "command_failed",
          code === "ENOENT" ? `${file} is not installed` : `${file} failed: ${err.message}`,
          { cause: err, ...(code === "ENOENT" ? { hint: `install the Debian package that provides ${file}` } : {}) },
        ),
      );
    });
    child.on("close", (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(new VmError("command_failed", `${file} ${args.join(" ")} exited ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}
