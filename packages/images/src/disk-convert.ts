import { spawn } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { ImageError } from "./errors.ts";

/** Lines of a tool's stderr kept for the error message. */
const stderrTailBytes = 4096;

/**
 * Decompresses `src` into `dst`. gzip through zlib; zstd and xz through Debian's `zstd` and
 * `xz-utils` binaries (Node 20's zlib has neither), installed by scripts/bootstrap.sh.
 */
export async function decompressFile(
  src: string,
  dst: string,
  compression: "gzip" | "xz" | "zstd",
  signal?: AbortSignal,
): Promise<void> {
  if (compression === "gzip") {
    try {
      await pipeline(createReadStream(src), createGunzip(), createWriteStream(dst), { signal });
    } catch (error) {
      signal?.throwIfAborted();
      throw new ImageError("convert_failed", `gunzip of ${src} failed: ${error}`, { cause: error });
    }
    return;
  }
  const tool = compression === "zstd" ? "zstd" : "xz";
  const args = compression === "zstd" ? ["-d", "-q", "-c", "--", src] : ["-d", "-c", "-T0", "--", src];
  await runTool(tool, args, signal, dst);
}

export interface DiskInfo {
  format: string;
  virtualSize: number;
  backingFile?: string;
}

export async function diskInfo(path: string, signal?: AbortSignal): Promise<DiskInfo> {
  const out = await runTool("qemu-img", ["info", "--output=json", "--", path], signal);
  const info = JSON.parse(out) as { format: string; "virtual-size": number; "backing-filename"?: string };
  return {
    format: info.format,
    virtualSize: info["virtual-size"],
    ...(info["backing-filename"] ? { backingFile: info["backing-filename"] } : {}),
  };
}

/**
 * Converts a downloaded disk to qcow2. The declared format is checked against what qemu-img sees
 * first: a "raw" download that is really a qcow2 could name a backing file on this host.
 */
export async function convertToQcow2(
  src: string,
  dst: string,
  declared: "qcow2" | "raw" | "vmdk",
  minSizeBytes: number,
  signal?: AbortSignal,
): Promise<void> {
  const info = await diskInfo(src, signal);
  if (info.format !== declared) {
    throw new ImageError("convert_failed", `${src} is ${info.format}, but the catalog says ${declared}`, {
      hint: "fix source.format (and compression) in images.yaml",
    });
  }
  if (info.backingFile) {
    throw new ImageError("convert_failed", `${src} names a backing file (${info.backingFile}); refused`, {
      hint: "a downloaded image must be self-contained",
    });
  }
  await runTool("qemu-img", ["convert", "-q", "-f", declared, "-O", "qcow2", "--", src, dst], signal);
  if (info.virtualSize < minSizeBytes) {
    await runTool("qemu-img", ["resize", "-q", "-f", "qcow2", "--", dst, String(minSizeBytes)], signal);
  }
}

/** Runs a tool; its stdout goes to `stdoutFile` when given, else is returned. */
async function runTool(tool: string, args: string[], signal?: AbortSignal, stdoutFile?: string): Promise<string> {
  signal?.throwIfAborted();
  const child = spawn(tool, args, { stdio: ["ignore", "pipe", "pipe"], ...(signal ? { signal } : {}) });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-stderrTailBytes);
  });
  const chunks: Buffer[] = [];
  const output = stdoutFile
    ? pipeline(child.stdout, createWriteStream(stdoutFile))
    : (async () => {
        for await (const chunk of child.stdout) chunks.push(chunk as Buffer);
      })();
  const exit = new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve(code));
  });
  let code: number | null;
  try {
    [, code] = await Promise.all([output, exit]);
  } catch (error) {
    signal?.throwIfAborted();
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw new ImageError("convert_failed", missing ? `${tool} is not installed` : `${tool} failed: ${error}`, {
      hint: missing ? "run scripts/bootstrap.sh (it installs zstd, xz-utils and qemu-utils)" : "",
      cause: error,
    });
  }
  if (code !== 0) {
    throw new ImageError(
      "convert_failed",
      `${tool} ${args[0]} exited with ${code}: ${stderr.trim().split("\n").at(-1)}`,
    );
  }
  return Buffer.concat(chunks).toString();
}

/** `qemu-img check`: the qcow2 metadata is consistent. */
export async function checkDisk(path: string, signal?: AbortSignal): Promise<void> {
  await runTool("qemu-img", ["check", "-q", "--", path], signal);
}
