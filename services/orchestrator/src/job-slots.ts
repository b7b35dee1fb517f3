import type { CapacitySlotGate, SlotGate } from "@solstice/bus";
import type { Logger } from "pino";
import type { PooledVm, WarmPool } from "./warm-pool.ts";

/**
 * What a successful `tryAcquire` holds until its job starts or the claim is given back:
 * - `free`: a slot that was free;
 * - `warm`: an idle warm VM of the job's label, with its slot;
 * - `evict`: an idle warm VM of another label, whose slot the job takes when the host's total
 *   bound is all that stands in the way (the VM is then destroyed).
 */
type Claim = { kind: "free" } | { kind: "warm" | "evict"; pooled: PooledVm };

/**
 * The slots as the job consumer sees them: a job may start when its label has a free slot or an
 * idle warm VM, or by taking over the slot of another label's idle warm VM. The pool's VMs hold
 * slots of the host's gate like running jobs do, so per-label and total bounds cover both.
 *
 * Claims of one label are interchangeable (each is one job's worth of capacity within the bounds),
 * so `release` gives back the newest and `start` uses the oldest.
 */
export class JobSlots implements SlotGate {
  private readonly claims = new Map<string, Claim[]>();

  constructor(
    private readonly slots: CapacitySlotGate,
    private readonly perLabel: Readonly<Record<string, number>>,
    private readonly pool: WarmPool,
    private readonly log: Logger,
    /** Labels to leave to hosts that run them under KVM for now (kvm-preference.ts). */
    private readonly defers: (label: string) => boolean = () => false,
  ) {}

  tryAcquire(label: string): boolean {
    if (this.defers(label)) return false;
    const warm = this.pool.take(label);
    if (warm) return this.claim(label, { kind: "warm", pooled: warm });
    // Evict claims hold no slot of this label yet: count them against its bound.
    const { byLabel } = this.slots.inUse();
    const pendingEvictions = (this.claims.get(label) ?? []).filter((c) => c.kind === "evict").length;
    if ((byLabel[label] ?? 0) + pendingEvictions >= (this.perLabel[label] ?? Number.POSITIVE_INFINITY)) return false;
    if (this.slots.tryAcquire(label)) return this.claim(label, { kind: "free" });
    const other = this.pool.takeOther(label);
    return other ? this.claim(label, { kind: "evict", pooled: other }) : false;
  }

  /** Gives back a claim whose job did not start (its queue was empty, or accepting it failed). */
  release(label: string): void {
    const claim = this.claims.get(label)?.pop();
    if (!claim) throw new Error(`released a job slot of label "${label}" that was not claimed`);
    if (claim.kind === "free") this.slots.release(label);
    else this.pool.giveBack(claim.pooled);
    // The queue was found empty with room to spare: the pool may use it, unless a job just taken
    // is still on its way to `start` (it would not have noted itself yet).
    if ((this.claims.get(label)?.length ?? 0) === 0) this.pool.refill(label);
  }

  onRelease(listener: () => void): () => void {
    const fromSlots = this.slots.onRelease(listener);
    const fromPool = this.pool.onIdle(listener);
    return () => {
      fromSlots();
      fromPool();
    };
  }

  /**
   * Turns a claim of `label` into a running job's slot, released with the host's gate when the job
   * is over. Resolves with the warm VM the job runs on, if its label's pool had one; an evicted VM
   * is gone before it resolves, so the job's own VM never runs beside it.
   */
  async start(label: string): Promise<PooledVm | undefined> {
    const claim = this.claims.get(label)?.shift();
    if (!claim) throw new Error(`started a job of label "${label}" without a claimed slot`);
    this.pool.noteJobStarted(label);
    if (claim.kind === "free") return undefined;
    if (claim.kind === "warm") return claim.pooled;
    // Hand the evicted VM's slot to this label before any await, so nothing else can take it.
    const from = claim.pooled.label;
    this.slots.release(from);
    if (!this.slots.tryAcquire(label)) throw new Error(`the slot of an evicted ${from} VM could not go to ${label}`);
    this.log.info(
      { from, to: label, vmId: claim.pooled.vm.id },
      "destroying an idle warm VM to free its slot for a job",
    );
    claim.pooled.session.close();
    await claim.pooled.vm
      .destroy()
      .catch((error: unknown) => this.log.error({ err: error, pool: from }, "warm VM teardown failed"));
    return undefined;
  }

  private claim(label: string, claim: Claim): true {
    const list = this.claims.get(label) ?? [];
    list.push(claim);
    this.claims.set(label, list);
    return true;
  }
}
