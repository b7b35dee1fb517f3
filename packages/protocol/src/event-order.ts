import type { JobEvent } from "./gen/solstice/v1/job_event_pb.ts";

/**
 * Puts one job attempt's events back in `seq` order and drops duplicates (a redelivery after a
 * reconnect). Events that arrive early wait, up to `maxPending`; past that bound the oldest
 * missing seq is declared lost and skipped, so a lost event cannot stall a follower forever.
 */
export class EventOrder {
  private next: bigint;
  private readonly pending = new Map<bigint, JobEvent>();

  /** `firstSeq`: where delivery starts; a follower that joins a running job starts at the first seq it sees. */
  constructor(
    private readonly maxPending = 10_000,
    firstSeq = 1n,
  ) {
    this.next = firstSeq;
  }

  /** Accepts one event and returns those now deliverable, in order. */
  push(event: JobEvent): JobEvent[] {
    if (event.seq < this.next || this.pending.has(event.seq)) return [];
    this.pending.set(event.seq, event);
    if (this.pending.size > this.maxPending) this.next = smallest(this.pending.keys());
    const ready: JobEvent[] = [];
    for (let e = this.pending.get(this.next); e; e = this.pending.get(this.next)) {
      ready.push(e);
      this.pending.delete(this.next);
      this.next += 1n;
    }
    return ready;
  }

  /** The seq expected next; everything below it has been delivered. */
  get expected(): bigint {
    return this.next;
  }
}

function smallest(values: Iterable<bigint>): bigint {
  let min: bigint | undefined;
  for (const v of values) if (min === undefined || v < min) min = v;
  return min ?? 0n;
}
