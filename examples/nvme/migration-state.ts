/**
 * The controller's state for live migration, as JSON: registers, queues
 * with their positions, phase tags and completions waiting for room, the
 * doorbell buffer, features, held Asynchronous Event Requests and pending
 * events, and the entries of commands in flight at the stop, which the
 * destination runs again (reads, writes, flushes, zeroing and admin
 * commands all give the same result when repeated).
 */
import type { AdminCommands } from './admin-commands';
import { MAX_IO_QUEUES, MAX_QUEUE_ENTRIES, SQ_ENTRY_SIZE } from './constants';
import type { RegisterValues } from './registers';
import { CompletionQueue, SubmissionQueue, type PendingCompletion } from './queues';

/** Version of the state format (`migration.version`). */
export const NVME_STATE_VERSION = 1;

interface SavedSubmissionQueue {
  id: number; base: number; size: number; cqId: number; head: number; tail: number;
  /** Command ID and base64 entry of each command in flight (held event requests excluded). */
  inFlight: Array<[number, string]>;
}

interface SavedCompletionQueue {
  id: number; base: number; size: number; interruptsEnabled: boolean; vector: number;
  head: number; tail: number; phase: number; backlog: PendingCompletion[];
}

interface SavedController {
  registers: { cc: number; csts: number; intms: number; aqa: number; asq: string; acq: string };
  doorbellBuffer: { doorbells: number; eventIndexes: number } | null;
  submissionQueues: SavedSubmissionQueue[];
  completionQueues: SavedCompletionQueue[];
  features: Array<[number, number]>;
  heldEventRequests: number[];
  pendingEvents: number[];
}

/** What the state is read from and written to. */
export interface MigratableParts {
  readonly registers: RegisterValues;
  readonly submissionQueues: Array<SubmissionQueue | undefined>;
  readonly completionQueues: Array<CompletionQueue | undefined>;
  doorbellBuffer: { doorbells: number; eventIndexes: number } | undefined;
  readonly admin: AdminCommands;
}

export function saveControllerState(parts: MigratableParts): Buffer {
  const held = new Set(parts.admin.heldEventRequests);
  const saved: SavedController = {
    registers: { ...parts.registers, asq: parts.registers.asq.toString(), acq: parts.registers.acq.toString() },
    doorbellBuffer: parts.doorbellBuffer ?? null,
    submissionQueues: parts.submissionQueues.filter((q): q is SubmissionQueue => q !== undefined).map((q) => ({
      id: q.id, base: q.base, size: q.size, cqId: q.cqId, head: q.head, tail: q.tail,
      inFlight: [...q.inFlight].filter(([cid]) => q.id !== 0 || !held.has(cid)).map(([cid, entry]) => [cid, entry.toString('base64')]),
    })),
    completionQueues: parts.completionQueues.filter((q): q is CompletionQueue => q !== undefined).map((q) => ({
      id: q.id, base: q.base, size: q.size, interruptsEnabled: q.interruptsEnabled, vector: q.vector,
      head: q.head, tail: q.tail, phase: q.phase, backlog: [...q.backlog],
    })),
    features: [...parts.admin.features],
    heldEventRequests: [...parts.admin.heldEventRequests],
    pendingEvents: [...parts.admin.pendingEvents],
  };
  return Buffer.from(JSON.stringify(saved));
}

function check(condition: boolean, what: string): void {
  if (!condition) {
    throw new RangeError(`NVMe state: ${what}`);
  }
}

const isIndex = (value: unknown, limit: number): boolean => Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) < limit;

/** Puts saved state into the controller's parts; throws, changing nothing, when the state does not hold together. */
export function loadControllerState(parts: MigratableParts, state: Buffer): void {
  const saved = JSON.parse(state.toString()) as SavedController;
  const sqs: SubmissionQueue[] = [];
  const cqs: CompletionQueue[] = [];
  for (const q of saved.completionQueues) {
    check(isIndex(q.id, MAX_IO_QUEUES + 1) && isIndex(q.size - 2, MAX_QUEUE_ENTRIES - 1) && isIndex(q.head, q.size) && isIndex(q.tail, q.size)
      && Number.isSafeInteger(q.base) && (q.phase === 0 || q.phase === 1) && isIndex(q.vector, MAX_IO_QUEUES + 1), `completion queue ${q.id}`);
    const queue = new CompletionQueue(q.id, q.base, q.size, q.interruptsEnabled === true, q.vector);
    Object.assign(queue, { head: q.head, tail: q.tail, phase: q.phase });
    for (const pending of q.backlog) {
      check(isIndex(pending.sqId, MAX_IO_QUEUES + 1) && isIndex(pending.cid, 0x10000) && isIndex(pending.status, 0x8000)
        && Number.isSafeInteger(pending.result), `completion waiting in queue ${q.id}`);
      queue.backlog.push({ sqId: pending.sqId, cid: pending.cid, result: pending.result, status: pending.status });
    }
    cqs[q.id] = queue;
  }
  for (const q of saved.submissionQueues) {
    check(isIndex(q.id, MAX_IO_QUEUES + 1) && isIndex(q.size - 2, MAX_QUEUE_ENTRIES - 1) && isIndex(q.head, q.size) && isIndex(q.tail, q.size)
      && Number.isSafeInteger(q.base) && cqs[q.cqId] !== undefined, `submission queue ${q.id}`);
    const queue = new SubmissionQueue(q.id, q.base, q.size, q.cqId);
    Object.assign(queue, { head: q.head, tail: q.tail });
    for (const [cid, entry] of q.inFlight) {
      const bytes = Buffer.from(entry, 'base64');
      check(isIndex(cid, 0x10000) && bytes.length === SQ_ENTRY_SIZE, `command ${cid} of queue ${q.id}`);
      queue.inFlight.set(cid, bytes);
    }
    sqs[q.id] = queue;
    cqs[q.cqId].submissionQueues.add(q.id);
  }
  check(saved.heldEventRequests.every((cid) => isIndex(cid, 0x10000)), 'held event requests');
  const { registers } = saved;
  Object.assign(parts.registers, { ...registers, asq: BigInt(registers.asq), acq: BigInt(registers.acq) });
  parts.submissionQueues.length = 0;
  parts.completionQueues.length = 0;
  sqs.forEach((q, id) => (parts.submissionQueues[id] = q));
  cqs.forEach((q, id) => (parts.completionQueues[id] = q));
  parts.doorbellBuffer = saved.doorbellBuffer ?? undefined;
  parts.admin.features = new Map(saved.features);
  parts.admin.heldEventRequests = [...saved.heldEventRequests];
  parts.admin.pendingEvents = [...saved.pendingEvents];
  const adminQueue = parts.submissionQueues[0];
  saved.heldEventRequests.forEach((cid) => adminQueue?.inFlight.set(cid, Buffer.alloc(SQ_ENTRY_SIZE)));
}
