import { spawn } from "node:child_process";
import { chmodSync, closeSync, fchmodSync, openSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import type { LocalImage } from "@solstice/images";
import { generateJobKeys } from "@solstice/ssh";
import type { Vm, VmBackend } from "@solstice/vm";
import ssh2, { type SFTPWrapper } from "ssh2";

/**
 * FOR BENCHMARKS ONLY. A VmBackend that boots nothing: each "VM" is an SSH server in this process
 * (the job's own pinned host key) whose commands run as local shells in a throwaway HOME, so the
 * executor, SSH, events, broker and database are all real and only the guest is missing. It
 * isolates nothing and must never run a real job.
 */
export function createShellBackend(): VmBackend {
  return {
    name: "bench-shell",
    async ensureImage(label: string): Promise<LocalImage> {
      return { label, disk: "/dev/null", diskFormat: "raw", machine: "q35", seedMedium: "virtio" } as LocalImage;
    },
    async boot(spec): Promise<Vm> {
      const keys = generateJobKeys();
      const home = await mkdtemp(path.join(tmpdir(), "solstice-bench-home-"));
      const server = new ssh2.Server({ hostKeys: [keys.host.privateKey] }, (client) => {
        client.on("authentication", (ctx) => ctx.accept());
        client.on("error", () => {
          // The executor closing its connection ends this client; nothing to report.
        });
        client.on("ready", () => {
          client.on("session", (acceptSession) => {
            const session = acceptSession();
            session.on("env", (accept) => accept?.());
            session.on("sftp", (accept) => serveUploads(accept()));
            session.on("exec", (accept, _reject, info) => {
              const stream = accept();
              const child = spawn("sh", ["-c", info.command], {
                cwd: home,
                env: { HOME: home, PATH: process.env.PATH ?? "/usr/bin:/bin" },
              });
              stream.pipe(child.stdin).on("error", () => {
                // The command may exit before reading all of stdin.
              });
              child.stdout.pipe(stream, { end: false });
              child.stderr.pipe(stream.stderr, { end: false });
              child.on("close", (code) => {
                stream.exit(code ?? 1);
                stream.end();
              });
            });
          });
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const port = (server.address() as AddressInfo).port;
      return {
        id: spec.vmName,
        ssh: {
          host: "127.0.0.1",
          port,
          username: "bench",
          privateKey: keys.client.privateKey,
          hostKey: keys.host.publicKey,
        },
        console: Readable.from([]),
        accelerator: "tcg",
        bootMs: 0,
        async destroy() {
          await new Promise<void>((resolve) => server.close(() => resolve()));
          await rm(home, { recursive: true, force: true });
        },
      };
    },
    reapOrphans: async () => 0,
  };
}

const { STATUS_CODE } = ssh2.utils.sftp;

/** Just enough SFTP for the executor's uploads: open, write, set the mode, close. */
function serveUploads(sftp: SFTPWrapper): void {
  const handles = new Map<number, number>();
  let next = 0;
  const handleOf = (buffer: Buffer) => handles.get(buffer.readUInt32BE(0));
  const attempt = (reqId: number, action: () => void) => {
    try {
      action();
      sftp.status(reqId, STATUS_CODE.OK);
    } catch {
      sftp.status(reqId, STATUS_CODE.FAILURE);
    }
  };
  sftp.on("OPEN", (reqId, filename, _flags, attrs) => {
    try {
      const fd = openSync(filename, "w", attrs.mode ?? 0o600);
      const handle = Buffer.alloc(4);
      handle.writeUInt32BE(next);
      handles.set(next++, fd);
      sftp.handle(reqId, handle);
    } catch {
      sftp.status(reqId, STATUS_CODE.FAILURE);
    }
  });
  sftp.on("WRITE", (reqId, handle, offset, data) => {
    attempt(reqId, () => writeSync(handleOf(handle) ?? -1, data, 0, data.length, offset));
  });
  sftp.on("FSETSTAT", (reqId, handle, attrs) => {
    attempt(reqId, () => fchmodSync(handleOf(handle) ?? -1, attrs.mode ?? 0o600));
  });
  sftp.on("SETSTAT", (reqId, filename, attrs) => {
    attempt(reqId, () => chmodSync(filename, attrs.mode ?? 0o600));
  });
  sftp.on("CLOSE", (reqId, handle) => {
    attempt(reqId, () => {
      const fd = handleOf(handle);
      handles.delete(handle.readUInt32BE(0));
      if (fd !== undefined) closeSync(fd);
    });
  });
}
