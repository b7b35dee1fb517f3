import { BusError } from "./errors.ts";

/**
 * The caller's capacity, as the job consumer sees it. The consumer takes a slot before it asks
 * the broker for a job of that label, and gives it back at once when the queue was empty; once a
 * job reaches `onJob`, its slot belongs to the caller, who releases it when the job is over.
 */
export interface SlotGate {
  /** Takes a slot for a job of `label` if one is free now; never waits. */
  tryAcquire(label: string): boolean;
  /** Gives back a slot taken for `label`. */
  release(label: string): void;
  /** Calls `listener` whenever capacity may have grown (a release, an undrain); returns the unsubscribe. */
  onRelease(listener: () => void): () => void;
}

export interface CapacitySlotGate extends SlotGate {
  /** Slots in use, in total and per label. */
  inUse(): { total: number; byLabel: Record<string, number> };
}

/**
 * A gate with a total bound and optional per-label bounds (e.g. total 4, `debian-12` at most 2).
 * A label without its own bound is limited by the total alone.
 */
export function createSlotGate(capacity: { total: number; perLabel?: Record<string, number> }): CapacitySlotGate {
  const perLabel = new Map(Object.entries(capacity.perLabel ?? {}));
  const used = new Map<string, number>();
  const listeners = new Set<() => void>();
  let total = 0;
  return {
    tryAcquire(label) {
      const usedByLabel = used.get(label) ?? 0;
      if (total >= capacity.total || usedByLabel >= (perLabel.get(label) ?? Number.POSITIVE_INFINITY)) return false;
      total++;
      used.set(label, usedByLabel + 1);
      return true;
    },
    release(label) {
      const usedByLabel = used.get(label) ?? 0;
      if (usedByLabel === 0) {
        throw new BusError("internal", `released a slot of label "${label}" that was not taken`);
      }
      total--;
      used.set(label, usedByLabel - 1);
      for (const listener of listeners) listener();
    },
    onRelease(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    inUse() {
      return { total, byLabel: Object.fromEntries(used) };
    },
  };
}
