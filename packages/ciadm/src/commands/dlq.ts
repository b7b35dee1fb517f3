import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import type { Logger } from "pino";
import { CliError, type FleetOptions, withBus, withFleetOptions } from "../fleet-access.ts";
import { formatTable } from "../table.ts";
import type { Terminal } from "../terminal.ts";

/** Letters looked at by one list or replay; the queue itself may hold more. */
const MAX_LETTERS = 10_000;

/** `ciadm dlq list|replay|purge`: messages the fleet refused, with why. */
export function registerDlq(program: Command, term: Terminal, logger: () => Logger): void {
  const dlq = program.command("dlq").description("the dead-letter queue: messages refused, with their reason");

  withFleetOptions(
    dlq
      .command("list")
      .description("show dead letters, oldest first (they stay in the queue)")
      .option("--limit <n>", `at most this many (≤ ${MAX_LETTERS})`, Number, 100)
      .option("--json", "machine-readable output", false),
    { bus: true },
  ).action(async (opts: FleetOptions & { limit: number; json: boolean }) => {
    const { letters, depth } = await withBus(opts, logger(), async (bus) => {
      await bus.declareTopology();
      const letters = await bus.listDeadLetters(Math.min(Math.max(1, opts.limit), MAX_LETTERS));
      return { letters, depth: await bus.deadLetterDepth() };
    });
    // A list cut at --limit says so (on stderr, so --json stays one document).
    if (depth > letters.length) {
      const next = Math.min(depth, MAX_LETTERS);
      term.err(
        `showing ${letters.length} of ${depth} dead letters${next > letters.length ? `; --limit ${next} shows more` : ""}\n`,
      );
    }
    const rows = letters.map((l) => ({
      id: l.messageId ?? "",
      type: l.type ?? "",
      queue: l.originalQueue ?? "",
      reasonCode: l.reasonCode,
      reason: l.reason,
      bytes: l.content.length,
    }));
    if (opts.json) {
      term.out(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    if (rows.length === 0) {
      term.out("the dead-letter queue is empty\n");
      return;
    }
    term.out(
      formatTable(
        ["ID", "TYPE", "FROM QUEUE", "CODE", "REASON"],
        rows.map((r) => [r.id || "-", r.type || "-", r.queue || "-", r.reasonCode, r.reason]),
      ),
    );
  });

  withFleetOptions(
    dlq
      .command("replay")
      .description("put dead letters back where they came from (a job goes back to its label queue)")
      .argument("[ids...]", "message ids, as `ciadm dlq list` shows them")
      .option("--all", "every dead letter", false)
      .option("-y, --yes", "do not ask for confirmation", false),
    { bus: true },
  ).action(async (ids: string[], opts: FleetOptions & { all: boolean; yes: boolean }) => {
    if (opts.all === ids.length > 0) {
      throw new CliError("usage", "name the dead letters to replay, or pass --all (not both)", "see `ciadm dlq list`");
    }
    const what = opts.all ? "every dead letter" : `${ids.length} dead letter(s)`;
    await confirm(`Replay ${what} to where they came from?`, opts.yes);
    const result = await withBus(opts, logger(), async (bus) => {
      await bus.declareTopology();
      return bus.replayDeadLetters(opts.all ? { all: true } : { messageIds: ids }, MAX_LETTERS);
    });
    term.out(`replayed ${result.replayed.length} dead letter(s)\n`);
    if (result.notFound.length > 0) {
      throw new CliError(
        "not_found",
        `not in the dead-letter queue: ${result.notFound.join(", ")}`,
        "see `ciadm dlq list`",
      );
    }
  });

  withFleetOptions(
    dlq
      .command("purge")
      .description("delete every dead letter")
      .option("-y, --yes", "do not ask for confirmation", false),
    { bus: true },
  ).action(async (opts: FleetOptions & { yes: boolean }) => {
    await confirm("Delete every dead letter? They cannot be recovered.", opts.yes);
    const purged = await withBus(opts, logger(), async (bus) => {
      await bus.declareTopology();
      return bus.purgeDeadLetters();
    });
    term.out(`purged ${purged} dead letter(s)\n`);
  });
}

/** Asks on the terminal; without one, only `--yes` may go ahead, so a script never hangs on a prompt. */
async function confirm(question: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new CliError("confirmation_needed", `${question} (no terminal to ask on)`, "pass --yes to confirm");
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new CliError("declined", "nothing done");
  } finally {
    rl.close();
  }
}
