/**
 * Submission and completion queues: ring positions, phase tag, and the
 * shadow doorbell and event index slots of the Doorbell Buffer Config.
 */

/** Where a queue's shadow doorbell and event index live in guest memory, once the host configured them. */
export interface ShadowSlots {
  readonly doorbell: number;
  readonly eventIndex: number;
}

/** A completion that waits for room in its completion queue. */
export interface PendingCompletion {
  readonly sqId: number;
  readonly cid: number;
  readonly result: number;
  readonly status: number;
}

/** A submission queue. */
export class SubmissionQueue {
  /** Next entry the controller fetches. */
  head = 0;
  /** One past the last entry the host submitted. */
  tail = 0;
  /** Commands fetched and not yet completed, by command ID: their entries, to run again after a migration. */
  readonly inFlight = new Map<number, Buffer>();
  /** A fetch loop is running. */
  fetching = false;
  /** The tail moved while the fetch loop ran: it goes round once more. */
  fetchAgain = false;
  shadow: ShadowSlots | undefined;

  constructor(
    readonly id: number,
    /** Guest address of entry 0. */
    readonly base: number,
    /** Entries (1-based). */
    readonly size: number,
    readonly cqId: number,
  ) {}
}

/** A completion queue. */
export class CompletionQueue {
  /** Next slot the controller writes. */
  tail = 0;
  /** Next slot the host consumes. */
  head = 0;
  /** Phase tag of the entries the controller writes in this pass. */
  phase = 1;
  /** Completions waiting for room, in order. */
  readonly backlog: PendingCompletion[] = [];
  shadow: ShadowSlots | undefined;
  /** Submission queues that complete here. */
  readonly submissionQueues = new Set<number>();

  constructor(
    readonly id: number,
    readonly base: number,
    readonly size: number,
    readonly interruptsEnabled: boolean,
    readonly vector: number,
  ) {}

  /** No room for another entry: a full queue keeps one slot empty. */
  get full(): boolean {
    return (this.tail + 1) % this.size === this.head;
  }

  /** Reserves the next slot: its index and phase. */
  claim(): { slot: number; phase: number } {
    const claimed = { slot: this.tail, phase: this.phase };
    this.tail = (this.tail + 1) % this.size;
    if (this.tail === 0) {
      this.phase ^= 1;
    }
    return claimed;
  }
}
