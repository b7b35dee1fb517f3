import {
  ensureImage,
  findCatalogEntry,
  type ImageProgress,
  type LocalImage,
  listCatalogImages,
  loadImageCatalog,
  pruneImageCache,
  pullImage,
  verifyCachedImages,
} from "@solstice/images";
import type { Command } from "commander";
import type { Logger } from "pino";
import type { Terminal } from "../terminal.ts";

interface CacheOptions {
  cacheDir?: string;
  catalog?: string;
  json?: boolean;
}

/** `ciadm images list | pull LABEL | prepare LABEL… | verify | prune`: the host's guest image cache. */
export function registerImagesCommands(program: Command, term: Terminal, logger: () => Logger): void {
  const images = program.command("images").description("the guest images in images.yaml and this host's cache");
  const common = (command: Command): Command =>
    command
      .option(
        "--cache-dir <dir>",
        "the image cache (default ~/.cache/solstice/images)",
        process.env.SOLSTICE_IMAGE_CACHE,
      )
      .option(
        "--catalog <file>",
        "the image catalog (default: the repository's images.yaml)",
        process.env.SOLSTICE_IMAGE_CATALOG,
      )
      .option("--json", "machine-readable output on stdout", false);

  common(images.command("list").description("every catalog image, how it is made, and what is cached")).action(
    async (opts: CacheOptions) => {
      const states = await listCatalogImages(await loadImageCatalog(opts.catalog), opts.cacheDir);
      if (opts.json) return term.out(`${JSON.stringify(states, null, 2)}\n`);
      const rows = states.map((s) => [
        s.label + (s.aliases.length ? ` (${s.aliases.join(", ")})` : ""),
        s.origin + (s.confirmed ? "" : ", URL unconfirmed"),
        s.cached ? `${s.cached.how}, ${(s.cached.bytes / 1024 ** 2).toFixed(0)} MiB` : "not cached",
      ]);
      term.out(table([["label", "made by", "cache"], ...rows]));
    },
  );

  common(images.command("pull").description("download, verify, decompress and convert an image into the cache"))
    .argument("<label>", "a label or alias from images.yaml")
    .option("--idle-timeout <seconds>", "give up when no data arrives for this long", Number, 60)
    .action(async (label: string, opts: CacheOptions & { idleTimeout: number }) => {
      const entry = findCatalogEntry(await loadImageCatalog(opts.catalog), label);
      const controller = new AbortController();
      const onSigint = () => controller.abort(new Error("interrupted; the next pull resumes the download"));
      process.once("SIGINT", onSigint);
      try {
        const image = await pullImage(entry, {
          signal: controller.signal,
          log: logger(),
          idleTimeoutMs: opts.idleTimeout * 1000,
          ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
          progress: progressLine(term, entry.label),
        });
        if (opts.json) term.out(`${JSON.stringify(image, null, 2)}\n`);
        else term.out(`${entry.label}: ready at ${image.disk}\n`);
      } finally {
        process.off("SIGINT", onSigint);
      }
    });

  common(
    images
      .command("prepare")
      .description("make images ready as a job would: the cached copy, else the download or the build"),
  )
    .argument("<labels...>", "labels or aliases from images.yaml")
    .action(async (labels: string[], opts: CacheOptions) => {
      const catalog = await loadImageCatalog(opts.catalog);
      const ready: LocalImage[] = [];
      for (const label of labels) {
        const image = await ensureImage(label, {
          catalog,
          log: logger(),
          ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
          progress: progressLine(term, label),
        });
        ready.push(image);
        if (!opts.json) term.out(`${label}: ready at ${image.disk}\n`);
      }
      if (opts.json) term.out(`${JSON.stringify(ready, null, 2)}\n`);
    });

  common(images.command("verify").description("check every cached image against its recorded checksum")).action(
    async (opts: CacheOptions) => {
      const results = await verifyCachedImages(opts.cacheDir);
      if (opts.json) term.out(`${JSON.stringify(results, null, 2)}\n`);
      else if (results.length === 0) term.out("the cache holds no images\n");
      else for (const r of results) term.out(`${r.ok ? "✔" : "✘"} ${r.dir}${r.problem ? `: ${r.problem}` : ""}\n`);
      if (results.some((r) => !r.ok)) {
        term.err("damaged images are rebuilt or pulled again once their directory is deleted\n");
        process.exitCode = 1;
      }
    },
  );

  common(images.command("prune").description("delete old pulls, old builds and leftovers of interrupted ones"))
    .option("--dry-run", "only say what would be deleted", false)
    .action(async (opts: CacheOptions & { dryRun: boolean }) => {
      const removed = await pruneImageCache({
        dryRun: opts.dryRun,
        ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
      });
      if (opts.json) return term.out(`${JSON.stringify({ removed, dryRun: opts.dryRun }, null, 2)}\n`);
      for (const path of removed) term.out(`${opts.dryRun ? "would delete" : "deleted"} ${path}\n`);
      if (removed.length === 0) term.out("nothing to prune\n");
    });
}

/** A progress bar on stderr for the download, a phase line for the rest. */
function progressLine(term: Terminal, label: string): ImageProgress {
  return ({ phase, detail, fraction }) => {
    if (phase === "download" && fraction !== undefined) {
      const width = 24;
      const filled = Math.round(Math.min(1, fraction) * width);
      const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
      term.status(`${label}: download ${bar} ${(fraction * 100).toFixed(0)}% ${detail ?? ""}`);
    } else {
      term.status(`${label}: ${phase}${detail ? ` ${detail}` : ""}`);
    }
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map(
      (r) =>
        `${r
          .map((cell, i) => cell.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd()}\n`,
    )
    .join("");
}
