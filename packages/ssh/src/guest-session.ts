import { randomUUID } from "node:crypto";
import { posix } from "node:path";
import { SshError } from "./errors.ts";
import { exportLines, shellQuote } from "./shell-quote.ts";

export interface ExecOptions {
  signal?: AbortSignal;
  /** `continued`: the line was longer than MAX_LINE_BYTES and its next piece follows. */
  onStdout?(line: string, continued: boolean): void;
  onStderr?(line: string, continued: boolean): void;
  /** Exported by the remote shell before the command; no SSH env requests are used. */
  env?: Record<string, string>;
  /** The command's standard input, followed by end-of-file (default: end-of-file at once). */
  stdin?: string | Buffer;
}

export interface ExecResult {
  /** null when the command died of a signal or the channel closed without a status. */
  exitCode: number | null;
  signal?: string;
}

export interface RunScriptOptions {
  script: string;
  /** Command template; `{0}` becomes the uploaded script's path, e.g. "bash -e {0}". */
  shell: string;
  env: Record<string, string>;
  /** Created if missing; the remote login directory when absent. */
  workingDirectory?: string;
  /** Aborting kills the script's whole process group in the guest (TERM, then KILL). */
  signal?: AbortSignal;
  /** `continued`: the line was longer than MAX_LINE_BYTES and its next piece follows. */
  onLine(stream: "stdout" | "stderr", text: string, continued: boolean): void;
  /**
   * Shell lines run just before the script, on the same round trip (umask 022): words they add to
   * the shell variable `refused` (`refused="$refused why"`) mean the script must not start; they
   * come back as `refused`.
   */
  prelude?: string;
  /** Text files written (mode applied) before the script starts, on the same round trip. */
  files?: readonly { readonly path: string; readonly content: string; readonly mode: number }[];
}

export interface RunScriptResult {
  exitCode: number | null;
  aborted: boolean;
  /** The words the prelude printed: the script did not run. */
  refused?: string[];
}

/** Time the script's process group gets between SIGTERM and SIGKILL after an abort. */
const KILL_GRACE_SECONDS = 2;
/** Bound on the kill command itself (a hung guest must not hang the abort). */
const KILL_DEADLINE_MS = 10_000;

/** The guest files of one `runScript` call. */
interface StepFiles {
  script: string;
  env: string;
  pid: string;
  /** Made by an abort; the step stops itself when it finds it. */
  cancel: string;
}

function filesOfStep(id: string): StepFiles {
  const base = `/tmp/solstice-step-${id}`;
  return { script: `${base}.script`, env: `${base}.env`, pid: `${base}.pid`, cancel: `${base}.cancel` };
}

/** Tries of an exec request the server refuses, and the pause before the next (times the try). */
const EXEC_ATTEMPTS = 4;
const EXEC_RETRY_DELAY_MS = 150;

/**
 * A way to run commands in a job's guest: SSH (SshSession) or the key agent's private channel
 * (ChannelSession). Each says how one command runs (`execOnce`) and how a file is written; the
 * steps, archives and kills built on commands are the same on both.
 */
export abstract class GuestSession {
  /** False once the connection has closed. */
  abstract get open(): boolean;
  /** Closes the connection; idempotent. */
  abstract close(): void;
  /** Writes `content` to `remotePath` and sets its mode. */
  abstract upload(remotePath: string, content: string | Buffer, mode: number): Promise<void>;
  /** For error messages: where this session points. */
  abstract get address(): string;
  /** Runs one command (see `exec`); a refused start rejects with SshError `channel_failed`. */
  protected abstract execOnce(command: string, opts: ExecOptions): Promise<ExecResult>;

  /**
   * Runs `command` through the remote shell, streaming stdout and stderr as lines. Rejects with
   * `aborted` when the signal fires (the channel is closed; use `runScript` to kill what it started).
   * A server that refuses the channel (dropbear does so now and then right after another channel
   * closed) is asked again a few times: a refused exec request never ran, so this is safe.
   */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.execOnce(command, opts);
      } catch (error) {
        const refused = error instanceof SshError && error.code === "channel_failed";
        if (!refused || attempt >= EXEC_ATTEMPTS || opts.signal?.aborted) throw error;
        await new Promise((resolve) => setTimeout(resolve, EXEC_RETRY_DELAY_MS * attempt));
      }
    }
  }

  /**
   * Runs `script` with `shell` in its own process group with `env` exported and in
   * `workingDirectory`, and streams its output as lines, in one round trip. On abort the group is
   * killed in the guest, so a timed-out step really stops. The script, the files and the
   * environment travel on standard input, written by shell builtins into files only the user
   * reads: never on a command line, where `ps` in the guest would show secrets for the whole step,
   * and without SFTP, whose first use starts a server in the guest. The step's shell reads the
   * environment file and empties it (a builtin redirection, no `rm` process) before anything else
   * runs; the wrapper removes the files when it exits. Every process the guest starts costs
   * 10–40 ms under TCG, so the path to the step's first line starts as few as it can: the
   * wrapper's shell (which sources its standard input when that is a pipe, else reads it with
   * `cat`), `setsid` and one `sh` that writes the pid, reads the environment and execs the step's
   * shell.
   */
  async runScript(opts: RunScriptOptions): Promise<RunScriptResult> {
    const id = randomUUID();
    const stepFiles = filesOfStep(id);
    const { script: scriptPath, env: envPath, pid: pidFile, cancel: cancelFile } = stepFiles;
    if (!opts.shell.includes("{0}")) throw new TypeError(`shell template has no {0}: ${opts.shell}`);
    const refusedMark = `solstice-refused-${id}`;
    const dir = opts.workingDirectory ? shellQuote(opts.workingDirectory) : undefined;
    const cd = dir ? `[ -d ${dir} ] || mkdir -p -- ${dir} || exit 1\ncd -- ${dir} || exit 1\n` : "";
    const prelude = opts.prelude
      ? `umask 022\n${opts.prelude}\numask 077\nif [ -n "$refused" ]; then echo ${refusedMark} $refused; exit 0; fi\n`
      : "";
    // Standard input is shell that only writes files (the caller's, the script, the environment
    // file), sourced before the prelude, which may refuse the step. The job runs as a child in a
    // new session (setsid), so its pid is the process group id that an abort kills; the wrapper
    // waits for it and passes its exit status on. The child writes its pid and only then looks
    // for the abort's cancel file, so an abort that finds no pid file is seen by the child.
    const wrapper =
      "set -u\n" +
      "umask 077\n" +
      "refused=\n" +
      `trap 'rm -f -- ${[scriptPath, envPath, pidFile, cancelFile].map(shellQuote).join(" ")}' EXIT\n` +
      // Standard input is a pipe under dropbear and job-commands: the shell sources it, no process. Not
      // `/dev/stdin`: minimal guests (devtmpfs without udev) have none. A socket (OpenSSH's
      // standard input) cannot be opened by name: `cat` reads it.
      'if [ -p /proc/self/fd/0 ]; then . /proc/self/fd/0; else eval "$(cat)"; fi || exit 1\n' +
      prelude +
      `setsid sh -c ${shellQuote(
        `echo $$ > ${shellQuote(pidFile)}; [ -e ${shellQuote(cancelFile)} ] && exit 143\n` +
          `. ${shellQuote(envPath)} || exit 1\n: > ${shellQuote(envPath)}\n${cd}exec ${opts.shell.replaceAll("{0}", shellQuote(scriptPath))}`,
      )} </dev/null &\n` +
      "wait $!\n";
    // A template that starts with {0} runs the script as a program; the others have a shell read it.
    const scriptMode = /^\s*\S*\{0\}/.test(opts.shell) ? 0o700 : 0o600;
    const files = [
      ...(opts.files ?? []),
      { path: scriptPath, content: opts.script, mode: scriptMode },
      { path: envPath, content: exportLines(opts.env), mode: 0o600 },
    ];
    const stdin = files.map((file) => writeFileLines(file.path, file.content, file.mode)).join("");
    const inner = new AbortController();
    let aborted = false;
    let refused: string[] | undefined;
    const onAbort = () => {
      aborted = true;
      inner.abort();
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    try {
      const result = await this.exec(wrapper, {
        stdin,
        signal: inner.signal,
        onStdout: (line, continued) => {
          if (refused === undefined && line.startsWith(`${refusedMark} `)) {
            refused = line
              .slice(refusedMark.length + 1)
              .split(" ")
              .filter(Boolean);
          } else opts.onLine("stdout", line, continued);
        },
        onStderr: (line, continued) => opts.onLine("stderr", line, continued),
      }).catch((err: unknown) => {
        if (aborted) return { exitCode: null };
        throw err;
      });
      if (aborted) {
        await this.killGroup(stepFiles);
        return { exitCode: null, aborted: true };
      }
      return { exitCode: result.exitCode, aborted: false, ...(refused ? { refused } : {}) };
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Unpacks a gzip-compressed tar archive into `directory` in the guest (made if missing), the
   * archive streamed on the command's standard input: no copy of it is kept in the guest, and it
   * needs only `tar` with `-z`, which busybox has too.
   */
  async unpackArchive(directory: string, archive: Buffer, signal?: AbortSignal): Promise<void> {
    const dir = shellQuote(directory);
    await this.feed(
      `mkdir -p -- ${dir} && tar -xzf - -C ${dir}`,
      archive,
      `unpack an archive into ${directory}`,
      signal,
    );
  }

  /**
   * Runs `command` with `input` on its standard input; a non-zero exit is an `upload_failed`
   * naming `what` could not be done, with the first lines the command printed on stderr.
   */
  protected async feed(command: string, input: string | Buffer, what: string, signal?: AbortSignal): Promise<void> {
    const errors: string[] = [];
    const result = await this.exec(command, {
      stdin: input,
      ...(signal ? { signal } : {}),
      onStderr: (line) => {
        if (errors.length < 5) errors.push(line);
      },
    });
    if (result.exitCode !== 0) {
      throw new SshError("upload_failed", `could not ${what} (exit ${result.exitCode}): ${errors.join("; ")}`);
    }
  }

  /**
   * Stops the step `runScript` started with `files`, wherever the abort caught it: the cancel file
   * comes first, so a step that has not written its pid yet stops itself when it does; one that has
   * is killed with its whole group. The cancel file stays for the step's wrapper to remove.
   */
  private async killGroup(files: StepFiles): Promise<void> {
    const command =
      `: > ${shellQuote(files.cancel)}; p=$(cat ${shellQuote(files.pid)} 2>/dev/null); ` +
      `if [ -n "$p" ]; then kill -TERM -- "-$p" 2>/dev/null; i=0; ` +
      `while kill -0 -- "-$p" 2>/dev/null && [ $i -lt ${KILL_GRACE_SECONDS * 10} ]; do sleep 0.1; i=$((i+1)); done; ` +
      `kill -KILL -- "-$p" 2>/dev/null; fi; rm -f -- ${[files.pid, files.script, files.env].map(shellQuote).join(" ")}; true`;
    await this.exec(command, { signal: AbortSignal.timeout(KILL_DEADLINE_MS) });
  }
}

/**
 * Shell lines that write `content` to `path` exactly, with `mode` (creating its directory), through
 * the builtin printf and a single-quoted string (no expansion). A new file takes its mode from the
 * umask (builtin) when the mode has no execute bits; only an existing file or an executable costs a
 * chmod process. The wrapper's umask (077) is restored after.
 */
function writeFileLines(path: string, content: string, mode: number): string {
  const dir = posix.dirname(path);
  const file = shellQuote(path);
  const mkdir =
    dir === "/tmp" || dir === "/" ? "" : `[ -d ${shellQuote(dir)} ] || mkdir -p -- ${shellQuote(dir)} || exit 1\n`;
  const write = `printf '%s' ${shellQuote(content)} > ${file} || exit 1`;
  const chmod = `chmod ${mode.toString(8)} ${file} || exit 1`;
  if (mode === 0o600) return `${mkdir}${write}\n`;
  if ((mode & 0o111) !== 0 || (mode & ~0o666) !== 0) return `${mkdir}${write}\n${chmod}\n`;
  const umask = (~mode & 0o777).toString(8).padStart(3, "0");
  return `${mkdir}if [ -e ${file} ]; then ${write}; ${chmod}; else umask ${umask}; ${write}; umask 077; fi\n`;
}
