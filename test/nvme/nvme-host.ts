/**
 * A small NVMe host driver over the vfio-user client, for the tests: it
 * sets up the admin queue, creates I/O queues, builds commands and PRP
 * lists in client memory, rings doorbells (or writes shadow doorbells with
 * the event-index rule Linux uses), and reaps completions by phase tag.
 */
import type { GuestMemory, VfioUserClient } from 'vfio-user/client';

import { Cc, Csts, NvmeRegister } from '../../examples/nvme';

export const BAR0 = 0;
export const PAGE = 4096;

/** A completion as the host reads it. */
export interface HostCompletion {
  readonly result: number;
  /** Status Field without the phase tag (SCT << 8 | SC, DNR at bit 14). */
  readonly status: number;
  readonly sqHead: number;
  readonly sqId: number;
  readonly cid: number;
}

/** Fields of a command to submit; the rest are zero. */
export interface CommandFields {
  opcode: number;
  nsid?: number;
  prp1?: bigint | number;
  prp2?: bigint | number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  /** Command dword 0 bits 15:8 (fuse, PSDT), for bad-input tests. */
  flags?: number;
  /** Use this command ID rather than the next free one. */
  cid?: number;
}

interface HostQueue {
  readonly id: number;
  readonly sqBase: number;
  readonly cqBase: number;
  readonly entries: number;
  sqTail: number;
  cqHead: number;
  phase: number;
  nextCid: number;
  readonly done: Map<number, HostCompletion[]>;
}

/** The driver. Memory: the first pages of `memory` are the driver's, handed out by {@link NvmeHost.allocate}. */
export class NvmeHost {
  private readonly queues = new Map<number, HostQueue>();
  private next: number;
  /** Shadow doorbell and event index pages, after {@link NvmeHost.configureDoorbellBuffer}. */
  doorbellBuffer: { doorbells: number; eventIndexes: number } | undefined;

  constructor(
    public client: VfioUserClient,
    public memory: GuestMemory,
  ) {
    this.next = memory.iova;
  }

  /** Goes on with the same queues on another controller (after a migration) and its copy of the memory. */
  moveTo(client: VfioUserClient, memory: GuestMemory): void {
    this.client = client;
    this.memory = memory;
  }

  /** Page-aligned memory for the driver's use, zeroed. */
  allocate(bytes: number): number {
    const at = this.next;
    const size = Math.ceil(bytes / PAGE) * PAGE;
    if (at + size > this.memory.iova + this.memory.size) {
      throw new RangeError('the test host ran out of memory');
    }
    this.next += size;
    this.memory.write(at, Buffer.alloc(size));
    return at;
  }

  /** Sets up the admin queues and enables the controller; resolves once CSTS.RDY is 1. */
  async enable(entries = 32): Promise<void> {
    const sqBase = this.allocate(entries * 64);
    const cqBase = this.allocate(entries * 16);
    await this.client.write32(BAR0, NvmeRegister.AQA, ((entries - 1) << 16) | (entries - 1));
    await this.client.write64(BAR0, NvmeRegister.ASQ, BigInt(sqBase));
    await this.client.write64(BAR0, NvmeRegister.ACQ, BigInt(cqBase));
    await this.client.write32(BAR0, NvmeRegister.CC, Cc.EN | (6 << 16) | (4 << 20));
    await this.waitStatus(Csts.RDY, Csts.RDY);
    this.queues.set(0, { id: 0, sqBase, cqBase, entries, sqTail: 0, cqHead: 0, phase: 1, nextCid: 0, done: new Map() });
  }

  /** Polls CSTS until `(CSTS & mask) === value`. */
  async waitStatus(mask: number, value: number, timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (((await this.client.read32(BAR0, NvmeRegister.CSTS)) & mask) !== value) {
      if (Date.now() > deadline) {
        throw new Error(`CSTS did not reach ${value} under mask ${mask}`);
      }
    }
  }

  /** Forgets the driver's queues (after the controller was reset). */
  forgetQueues(): void {
    this.queues.clear();
    this.doorbellBuffer = undefined;
  }

  /** Creates I/O queue pair `id` (CQ with MSI-X vector `vector`, interrupts on). */
  async createQueuePair(id: number, entries = 64, vector = id): Promise<void> {
    const cqBase = this.allocate(entries * 16);
    const sqBase = this.allocate(entries * 64);
    await this.expectSuccess(0, { opcode: 0x05, prp1: cqBase, cdw10: ((entries - 1) << 16) | id, cdw11: (vector << 16) | 0x3 });
    await this.expectSuccess(0, { opcode: 0x01, prp1: sqBase, cdw10: ((entries - 1) << 16) | id, cdw11: (id << 16) | 0x1 });
    this.queues.set(id, { id, sqBase, cqBase, entries, sqTail: 0, cqHead: 0, phase: 1, nextCid: 0, done: new Map() });
  }

  /** Sends Doorbell Buffer Config; I/O submissions then go through the shadow doorbells. */
  async configureDoorbellBuffer(): Promise<void> {
    const doorbells = this.allocate(PAGE);
    const eventIndexes = this.allocate(PAGE);
    await this.expectSuccess(0, { opcode: 0x7c, prp1: doorbells, prp2: eventIndexes });
    this.doorbellBuffer = { doorbells, eventIndexes };
  }

  /** Writes a command into the queue and rings (or shadows) the tail; returns its command ID. */
  async submit(queueId: number, fields: CommandFields): Promise<number> {
    const [cid] = await this.submitAll(queueId, [fields]);
    return cid;
  }

  /** Writes commands into the queue and rings the tail once for all; returns their command IDs. */
  async submitAll(queueId: number, commands: readonly CommandFields[]): Promise<number[]> {
    const queue = this.queue(queueId);
    const old = queue.sqTail;
    const cids = commands.map((fields) => this.place(queue, fields));
    await this.ringTail(queue, old);
    return cids;
  }

  /**
   * Submits commands one by one, each with its own doorbell decision, as
   * a CPU does: MMIO writes are posted, so the next submission does not
   * wait for the previous doorbell to reach the device.
   */
  async submitPosted(queueId: number, commands: readonly CommandFields[]): Promise<number[]> {
    const queue = this.queue(queueId);
    const rings: Array<Promise<void>> = [];
    const cids = commands.map((fields) => {
      const old = queue.sqTail;
      const cid = this.place(queue, fields);
      rings.push(this.ringTail(queue, old));
      return cid;
    });
    await Promise.all(rings);
    return cids;
  }

  private place(queue: HostQueue, fields: CommandFields): number {
    const cid = fields.cid ?? queue.nextCid;
    queue.nextCid = (cid + 1) & 0xffff;
    const entry = Buffer.alloc(64);
    entry.writeUInt32LE((fields.opcode | ((fields.flags ?? 0) << 8) | (cid << 16)) >>> 0, 0);
    entry.writeUInt32LE(fields.nsid ?? 0, 4);
    entry.writeBigUInt64LE(BigInt(fields.prp1 ?? 0), 24);
    entry.writeBigUInt64LE(BigInt(fields.prp2 ?? 0), 32);
    [fields.cdw10, fields.cdw11, fields.cdw12, fields.cdw13].forEach((dword, i) => entry.writeUInt32LE((dword ?? 0) >>> 0, 40 + 4 * i));
    this.memory.write(queue.sqBase + queue.sqTail * 64, entry);
    queue.sqTail = (queue.sqTail + 1) % queue.entries;
    return cid;
  }

  /** Rings the tail as Linux does: with a doorbell buffer, MMIO only when the event index lies in (old, new]. */
  private async ringTail(queue: HostQueue, old: number): Promise<void> {
    const buffer = this.doorbellBuffer;
    if (buffer !== undefined && queue.id !== 0) {
      const slot = 2 * queue.id * 4;
      this.memory.write(buffer.doorbells + slot, u32(queue.sqTail));
      const eventIndex = this.memory.read(buffer.eventIndexes + slot, 4).readUInt32LE(0);
      if (!needEvent(eventIndex, queue.sqTail, old)) {
        return;
      }
    }
    await this.client.write32(BAR0, NvmeRegister.DOORBELLS + 2 * queue.id * 4, queue.sqTail);
  }

  /** Waits for the completion of `cid` on the queue pair, reaping others on the way. */
  async wait(queueId: number, cid: number, timeoutMs = 5000): Promise<HostCompletion> {
    const queue = this.queue(queueId);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.reap(queue);
      const found = queue.done.get(cid)?.shift();
      if (found !== undefined) {
        return found;
      }
      if (Date.now() > deadline) {
        throw new Error(`no completion for command ${cid} on queue ${queueId}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /**
   * Completions that arrive within `ms`, without waiting for any command in
   * particular: for what has no later event to wait for.
   */
  async reapFor(queueId: number, ms: number): Promise<HostCompletion[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.reapPosted(queueId);
  }

  /** Completions already posted and not yet taken by a wait. */
  async reapPosted(queueId: number): Promise<HostCompletion[]> {
    const queue = this.queue(queueId);
    await this.reap(queue);
    const all = [...queue.done.values()].flat();
    queue.done.clear();
    return all;
  }

  /** Submits and waits. */
  async command(queueId: number, fields: CommandFields): Promise<HostCompletion> {
    return this.wait(queueId, await this.submit(queueId, fields));
  }

  /** Submits, waits, and fails unless the status is success. */
  async expectSuccess(queueId: number, fields: CommandFields): Promise<HostCompletion> {
    const completion = await this.command(queueId, fields);
    if (completion.status !== 0) {
      throw new Error(`opcode 0x${fields.opcode.toString(16)} on queue ${queueId} completed with status 0x${completion.status.toString(16)}`);
    }
    return completion;
  }

  private async reap(queue: HostQueue): Promise<void> {
    const old = queue.cqHead;
    let moved = false;
    for (;;) {
      const entry = this.memory.read(queue.cqBase + queue.cqHead * 16, 16);
      const statusWord = entry.readUInt16LE(14);
      if ((statusWord & 1) !== queue.phase) {
        break;
      }
      const completion = {
        result: entry.readUInt32LE(0),
        sqHead: entry.readUInt16LE(8),
        sqId: entry.readUInt16LE(10),
        cid: entry.readUInt16LE(12),
        status: statusWord >>> 1,
      };
      queue.done.set(completion.cid, [...(queue.done.get(completion.cid) ?? []), completion]);
      queue.cqHead = (queue.cqHead + 1) % queue.entries;
      if (queue.cqHead === 0) {
        queue.phase ^= 1;
      }
      moved = true;
    }
    if (moved) {
      const buffer = this.doorbellBuffer;
      if (buffer !== undefined && queue.id !== 0) {
        const slot = (2 * queue.id + 1) * 4;
        this.memory.write(buffer.doorbells + slot, u32(queue.cqHead));
        const eventIndex = this.memory.read(buffer.eventIndexes + slot, 4).readUInt32LE(0);
        if (!needEvent(eventIndex, queue.cqHead, old)) {
          return;
        }
      }
      await this.client.write32(BAR0, NvmeRegister.DOORBELLS + (2 * queue.id + 1) * 4, queue.cqHead);
    }
  }

  private queue(id: number): HostQueue {
    const queue = this.queues.get(id);
    if (queue === undefined) {
      throw new Error(`the test host has no queue ${id}`);
    }
    return queue;
  }

  /**
   * PRP1 / PRP2 for a buffer of `bytes` at page-aligned `iova` (plus
   * `offset`), with a PRP list when it needs one.
   */
  prps(iova: number, bytes: number): { prp1: number; prp2: number } {
    const pages = Math.ceil(bytes / PAGE);
    if (pages <= 1) {
      return { prp1: iova, prp2: 0 };
    }
    if (pages === 2) {
      return { prp1: iova, prp2: iova + PAGE };
    }
    const list = this.allocate((pages - 1) * 8);
    for (let i = 1; i < pages; i++) {
      this.memory.write(list + (i - 1) * 8, u64(iova + i * PAGE));
    }
    return { prp1: iova, prp2: list };
  }
}

/** Linux's rule: ring when the event index lies in [old, new) of the 16-bit ring positions. */
function needEvent(eventIndex: number, value: number, old: number): boolean {
  return ((value - eventIndex - 1) & 0xffff) < ((value - old) & 0xffff);
}

export function u32(value: number): Buffer {
  const data = Buffer.alloc(4);
  data.writeUInt32LE(value >>> 0);
  return data;
}

export function u64(value: number): Buffer {
  const data = Buffer.alloc(8);
  data.writeBigUInt64LE(BigInt(value));
  return data;
}
