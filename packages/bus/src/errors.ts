export type BusErrorCode =
  | "unroutable_label"
  | "bus_unavailable"
  | "topology_mismatch"
  | "delivery_lost"
  | "delivery_settled"
  | "publish_refused"
  | "invalid_name"
  | "owner_taken"
  | "closed"
  | "internal";

/**
 * Every error this package throws. The message reads well in a log line (`[code] what happened`);
 * `rawMessage` is the text without the code, `hint` says what to do next. Never carries a secret:
 * broker URLs are logged without their password and message bodies are never quoted.
 */
export class BusError extends Error {
  override name = "BusError";
  readonly rawMessage: string;
  readonly hint: string | undefined;

  constructor(
    readonly code: BusErrorCode,
    message: string,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(`[${code}] ${message}`, { cause: options?.cause });
    this.rawMessage = message;
    this.hint = options?.hint;
  }

  /** Turns anything a `catch` receives into a BusError, keeping the original as the cause. */
  static from(reason: unknown): BusError {
    if (reason instanceof BusError) return reason;
    const message = reason instanceof Error ? reason.message : String(reason);
    return new BusError("internal", message, { cause: reason });
  }
}

/** The broker returned a job: no queue is bound for its `runs_on` label. */
export class UnroutableLabelError extends BusError {
  override name = "UnroutableLabelError";
  constructor(
    readonly label: string,
    readonly servedLabels: readonly string[],
  ) {
    super("unroutable_label", `label "${label}" is served by no host: no queue is bound for it`, {
      hint:
        servedLabels.length > 0
          ? `served: ${servedLabels.join(", ")}; use one of them in runs-on, or start an orchestrator that serves "${label}"`
          : `no label is served yet; start an orchestrator that serves "${label}"`,
    });
  }
}

/** The broker could not be reached within the deadline. */
export class BusUnavailableError extends BusError {
  override name = "BusUnavailableError";
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super("bus_unavailable", message, options);
  }
}

/** A queue or exchange exists with other arguments than ours (RabbitMQ PRECONDITION_FAILED). */
export class TopologyMismatchError extends BusError {
  override name = "TopologyMismatchError";
  constructor(
    readonly entity: string,
    brokerText: string,
    options?: { cause?: unknown },
  ) {
    super("topology_mismatch", `"${entity}" already exists with different settings: ${brokerText}`, {
      hint: `delete "${entity}" on the broker (rabbitmqctl delete_queue / the management UI) or configure the same delivery limit and queue length it was created with`,
      cause: options?.cause,
    });
  }
}

/**
 * A delivery can no longer be settled because the channel it came on is gone; the broker has put
 * the message back in its queue and will deliver it again (maybe to another host).
 */
export class DeliveryLostError extends BusError {
  override name = "DeliveryLostError";
  constructor(messageId: string | undefined, options?: { cause?: unknown }) {
    super(
      "delivery_lost",
      `the channel of delivery ${messageId ?? "(no message id)"} closed before it was settled; the broker will redeliver it`,
      { hint: "treat the job as not taken: another host (or this one) will receive it again", cause: options?.cause },
    );
  }
}

/**
 * Another process already consumes this owner's event queue. Two consumers would split the events
 * of each other's jobs between them, and each would drop what is not its own: jobs would hang.
 */
export class OwnerTakenError extends BusError {
  override name = "OwnerTakenError";
  constructor(
    readonly owner: string,
    readonly queue: string,
  ) {
    super("owner_taken", `another process already consumes the events of owner "${owner}" (queue ${queue})`, {
      hint: `two runners (or ciadm runs) share one owner name; give each its own SOLSTICE_OWNER. The broker names the other process: rabbitmqctl list_consumers / list_connections name client_properties`,
    });
  }
}
