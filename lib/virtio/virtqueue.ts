/**
 * `Virtqueue`: a split virtqueue (spec 2.7) at the addresses the driver
 * programmed. It takes descriptor chains from the available ring, checks
 * every field the driver wrote, hands them to the device as requests, and
 * puts completed ones in the used ring, interrupting the driver as
 * VIRTIO_F_EVENT_IDX or the ring flags allow.
 *
 * @packageDocumentation
 */
import type { DmaSpace } from '../dma';
import { VIRTIO_MSI_NO_VECTOR, VIRTQ_DESC_SIZE, VIRTQ_MAX_SIZE, VirtioFeature, VirtqDescFlag, VirtqRingFlag } from './constants';
import { type GuestSegment, isMapped, load, store } from './guest-buffers';
import type { VirtqueueState } from './migration-state';
import { VirtqueueRequest } from './request';

/** The driver broke a rule of the ring: the device needs a reset. */
export class VirtqueueError extends Error {
  constructor(
    /** The queue. */
    readonly queueIndex: number,
    message: string,
  ) {
    super(`virtqueue ${queueIndex}: ${message}`);
    this.name = 'VirtqueueError';
  }
}

/** What a queue needs from its device. @internal */
export interface VirtqueueHost {
  readonly dma: DmaSpace;
  /** Whether a feature bit was negotiated. */
  negotiated(bit: number): boolean;
  /** A chain became available. */
  deliver(queue: Virtqueue, request: VirtqueueRequest): void;
  /** The queue wants to interrupt the driver. */
  interrupt(queue: Virtqueue): void;
  /** The driver broke the ring (or its memory went away): mark the device NEEDS_RESET. */
  fail(queue: Virtqueue, error: Error): void;
}

const USED_ELEM_SIZE = 8;
const RING_HEADER = 4;

/** A split virtqueue: its registers as the driver programs them, and its rings. */
export class Virtqueue {
  /** Queue size the driver chose (a power of two, at most `maxSize`). */
  size: number;
  /** MSI-X vector of the queue's interrupts, or VIRTIO_MSI_NO_VECTOR. */
  msixVector = VIRTIO_MSI_NO_VECTOR;
  /** The driver enabled the queue. */
  enabled = false;
  /** Guest address of the descriptor table. */
  descAddress = 0;
  /** Guest address of the available (driver) ring. */
  driverAddress = 0;
  /** Guest address of the used (device) ring. */
  deviceAddress = 0;
  /** Requests taken and not yet completed. */
  inFlight = 0;

  #lastAvail = 0;
  /** used.idx as the device counts it (chains completed). */
  #usedIdx = 0;
  /** used.idx as written to guest memory. */
  #publishedUsed = 0;
  /** used.idx at the last interrupt decision. */
  #signalledUsed = 0;
  /** Bumped at every reset: work of an older epoch is dropped. */
  #epoch = 0;
  /** The epoch whose drain is running, if any (a drain of an older epoch winds down on its own). */
  #drainingEpoch: number | undefined;
  #kickedWhileDraining = false;
  /** Completions whose used-ring writes are queued or in flight. */
  #unpublished = 0;
  /** Used-ring writes and interrupt decisions, in order (DMA messages may be slower than the code that issues them). */
  #usedWrites: Promise<void> = Promise.resolve();
  /** Heads taken and not yet published in the used ring: what a migration must serve again. */
  readonly #outstanding = new Set<number>();

  /** @internal */
  constructor(
    private readonly host: VirtqueueHost,
    /** The queue's number. */
    readonly index: number,
    /** Largest size the device supports. */
    readonly maxSize: number,
  ) {
    this.size = maxSize;
  }

  /** Back to the state after a device reset: disabled, addresses 0, in-flight work dropped. */
  reset(): void {
    this.size = this.maxSize;
    this.msixVector = VIRTIO_MSI_NO_VECTOR;
    this.enabled = false;
    this.descAddress = 0;
    this.driverAddress = 0;
    this.deviceAddress = 0;
    this.inFlight = 0;
    this.#lastAvail = 0;
    this.#usedIdx = 0;
    this.#publishedUsed = 0;
    this.#signalledUsed = 0;
    this.#epoch++;
    this.#unpublished = 0;
    this.#usedWrites = Promise.resolve();
    this.#outstanding.clear();
  }

  /** @internal Whether work of `epoch` still counts (no reset or stop since). */
  isCurrent(epoch: number): boolean {
    return epoch === this.#epoch;
  }

  /**
   * @internal The device stopped for migration: work in flight is dropped
   * (its completions do nothing), and what was not yet in the used ring
   * stays outstanding, to be served again by {@link Virtqueue.resume}.
   */
  freeze(): void {
    this.#epoch++;
    this.#unpublished = 0;
    this.#usedWrites = Promise.resolve();
    this.#usedIdx = this.#publishedUsed;
    this.inFlight = 0;
  }

  /** @internal The state a migration carries. */
  saveState(): VirtqueueState {
    return {
      size: this.size, msixVector: this.msixVector, enabled: this.enabled,
      descAddress: this.descAddress, driverAddress: this.driverAddress, deviceAddress: this.deviceAddress,
      lastAvail: this.#lastAvail, usedIdx: this.#publishedUsed, signalledUsed: this.#signalledUsed,
      outstanding: [...this.#outstanding],
    };
  }

  /** @internal Takes a migrated state (checked by decodeVirtioState); it goes live in {@link Virtqueue.resume}. */
  loadState(state: VirtqueueState): void {
    this.reset();
    this.size = state.size;
    this.msixVector = state.msixVector;
    this.enabled = state.enabled;
    this.descAddress = state.descAddress;
    this.driverAddress = state.driverAddress;
    this.deviceAddress = state.deviceAddress;
    this.#lastAvail = state.lastAvail;
    this.#usedIdx = state.usedIdx;
    this.#publishedUsed = state.usedIdx;
    this.#signalledUsed = state.signalledUsed;
    state.outstanding.forEach((head) => this.#outstanding.add(head));
  }

  /**
   * @internal The device runs again after a stop (on the destination, or on
   * the source when the migration was called off): the outstanding chains
   * are served again, then whatever the driver made available meanwhile.
   */
  resume(): void {
    this.#startDrain(true);
  }

  /** Why the programmed ring cannot be used, or undefined when it can (checked when the driver enables it). */
  layoutProblem(): string | undefined {
    const { size } = this;
    if (size === 0 || (size & (size - 1)) !== 0 || size > this.maxSize) {
      return `queue size ${size} is not a power of two up to ${this.maxSize}`;
    }
    if (this.descAddress % 16 !== 0 || this.driverAddress % 2 !== 0 || this.deviceAddress % 4 !== 0) {
      return 'the ring addresses are misaligned';
    }
    const rings: Array<[string, number, number, 'read' | 'write']> = [
      ['descriptor table', this.descAddress, VIRTQ_DESC_SIZE * size, 'read'],
      ['available ring', this.driverAddress, RING_HEADER + 2 * size + 2, 'read'],
      ['used ring', this.deviceAddress, RING_HEADER + USED_ELEM_SIZE * size + 2, 'write'],
    ];
    for (const [name, address, length, access] of rings) {
      if (!isMapped(this.host.dma, address, length, access)) {
        return `the ${name} at 0x${address.toString(16)} (+0x${length.toString(16)}) is not in mapped memory`;
      }
    }
    return undefined;
  }

  /**
   * Resolves once every completion made so far is in the used ring and its
   * interrupt decided: raised, or suppressed as the driver asked. With guest
   * memory reached by DMA messages those writes take round trips.
   */
  settled(): Promise<void> {
    return this.#usedWrites;
  }

  /** The driver notified the queue: take every available chain. */
  kick(): void {
    if (this.#drainingEpoch === this.#epoch) {
      this.#kickedWhileDraining = true;
      return;
    }
    this.#startDrain(false);
  }

  #startDrain(resuming: boolean): void {
    const epoch = this.#epoch;
    this.#drainingEpoch = epoch;
    this.#kickedWhileDraining = false;
    void this.#drain(epoch, resuming).finally(() => {
      if (this.#drainingEpoch === epoch) {
        this.#drainingEpoch = undefined;
      }
    });
  }

  async #drain(epoch: number, resuming = false): Promise<void> {
    try {
      if (resuming) {
        await this.#serveOutstanding(epoch);
      }
      do {
        this.#kickedWhileDraining = false;
        await this.#takeAvailable(epoch);
      } while (this.#kickedWhileDraining && epoch === this.#epoch);
    } catch (err) {
      if (epoch === this.#epoch) {
        this.host.fail(this, err as Error);
      }
    }
  }

  /**
   * Serves the outstanding chains again. Those the used ring already holds
   * (a used-ring write still on its way at the stop) are not: guest memory
   * is the truth about what the driver was given.
   */
  async #serveOutstanding(epoch: number): Promise<void> {
    const published = await this.#readU16(this.deviceAddress + 2);
    const arrived = (published - this.#publishedUsed) & 0xffff;
    if (arrived > this.#outstanding.size) {
      throw new VirtqueueError(this.index, `used.idx ${published} is ${arrived} past the device's ${this.#publishedUsed}, more than the ${this.#outstanding.size} chains outstanding`);
    }
    for (let k = 0; k < arrived; k++) {
      const slot = (this.#publishedUsed + k) % this.size;
      const element = await load(this.host.dma, this.deviceAddress + RING_HEADER + USED_ELEM_SIZE * slot, USED_ELEM_SIZE);
      this.#outstanding.delete(element.readUInt32LE(0));
    }
    if (epoch !== this.#epoch) {
      return;
    }
    this.#usedIdx = published;
    this.#publishedUsed = published;
    const heads = [...this.#outstanding];
    this.#outstanding.clear();
    if (heads.length > 0) {
      const table = await load(this.host.dma, this.descAddress, VIRTQ_DESC_SIZE * this.size);
      for (const head of heads) {
        const request = await this.#parseChain(table, head);
        if (epoch !== this.#epoch) {
          return;
        }
        this.#take(request);
      }
    }
    // Completions published before the stop may not have had their interrupt.
    this.#afterUsedWrites(epoch, () => this.#maybeInterrupt(epoch));
  }

  #take(request: VirtqueueRequest): void {
    this.#outstanding.add(request.head);
    this.inFlight++;
    this.host.deliver(this, request);
  }

  async #readU16(address: number): Promise<number> {
    return (await load(this.host.dma, address, 2)).readUInt16LE(0);
  }

  async #takeAvailable(epoch: number): Promise<void> {
    const eventIdx = this.host.negotiated(VirtioFeature.RING_EVENT_IDX);
    for (;;) {
      const availIdx = await this.#readU16(this.driverAddress + 2);
      if (epoch !== this.#epoch) {
        return;
      }
      const pending = (availIdx - this.#lastAvail) & 0xffff;
      if (pending > this.size) {
        throw new VirtqueueError(this.index, `avail.idx ${availIdx} is ${pending} chains ahead of the device's ${this.#lastAvail}, more than the queue size ${this.size}`);
      }
      if (pending === 0) {
        if (!eventIdx) {
          return;
        }
        // Ask for a kick at the next chain, then look again: one added
        // before the driver could see avail_event got no kick.
        const event = Buffer.alloc(2);
        event.writeUInt16LE(this.#lastAvail);
        await store(this.host.dma, this.deviceAddress + RING_HEADER + USED_ELEM_SIZE * this.size, event);
        if (epoch !== this.#epoch || (await this.#readU16(this.driverAddress + 2)) === this.#lastAvail) {
          return;
        }
        continue;
      }
      const ring = Buffer.from(await load(this.host.dma, this.driverAddress + RING_HEADER, 2 * this.size));
      const table = await load(this.host.dma, this.descAddress, VIRTQ_DESC_SIZE * this.size);
      for (let k = 0; k < pending; k++) {
        const head = ring.readUInt16LE(2 * (this.#lastAvail % this.size));
        const request = await this.#parseChain(table, head);
        if (epoch !== this.#epoch) {
          return;
        }
        this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
        this.#take(request);
      }
    }
  }

  /** Follows a chain from `head`, with every bound and loop check. */
  async #parseChain(directTable: Buffer, head: number): Promise<VirtqueueRequest> {
    if (head >= this.size) {
      throw new VirtqueueError(this.index, `chain head ${head} is outside the ${this.size}-entry descriptor table`);
    }
    const readable: GuestSegment[] = [];
    const writable: GuestSegment[] = [];
    let table = directTable;
    let entries = this.size;
    let indirect = false;
    let seen = 0;
    let i = head;
    for (;;) {
      if (++seen > entries) {
        throw new VirtqueueError(this.index, `the chain from ${head} loops or is longer than its ${entries}-entry ${indirect ? 'indirect ' : ''}table`);
      }
      const at = i * VIRTQ_DESC_SIZE;
      const address = table.readBigUInt64LE(at);
      const length = table.readUInt32LE(at + 8);
      const flags = table.readUInt16LE(at + 12);
      const next = table.readUInt16LE(at + 14);
      if (address > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new VirtqueueError(this.index, `descriptor ${i} points at 0x${address.toString(16)}, outside guest memory`);
      }
      const segment = { address: Number(address), length };
      if ((flags & VirtqDescFlag.INDIRECT) !== 0) {
        if (!this.host.negotiated(VirtioFeature.RING_INDIRECT_DESC)) {
          throw new VirtqueueError(this.index, `descriptor ${i} is indirect, but VIRTIO_F_RING_INDIRECT_DESC was not negotiated`);
        }
        if (indirect || (flags & VirtqDescFlag.NEXT) !== 0 || readable.length + writable.length > 0) {
          throw new VirtqueueError(this.index, `indirect descriptor ${i} is nested, chained, or follows other buffers`);
        }
        if (length === 0 || length % VIRTQ_DESC_SIZE !== 0 || length / VIRTQ_DESC_SIZE > VIRTQ_MAX_SIZE) {
          throw new VirtqueueError(this.index, `indirect table of ${length} bytes is not 1 to 32768 descriptors`);
        }
        if (!isMapped(this.host.dma, segment.address, length, 'read')) {
          throw new VirtqueueError(this.index, `indirect table at 0x${segment.address.toString(16)} is not in mapped memory`);
        }
        table = Buffer.from(await load(this.host.dma, segment.address, length));
        entries = length / VIRTQ_DESC_SIZE;
        indirect = true;
        seen = 0;
        i = 0;
        continue;
      }
      const deviceWrites = (flags & VirtqDescFlag.WRITE) !== 0;
      if (!deviceWrites && writable.length > 0) {
        throw new VirtqueueError(this.index, `descriptor ${i} is device-readable after device-writable ones`);
      }
      if (!isMapped(this.host.dma, segment.address, length, deviceWrites ? 'write' : 'read')) {
        throw new VirtqueueError(this.index, `descriptor ${i} (0x${segment.address.toString(16)}, +0x${length.toString(16)}) is not in memory the device may ${deviceWrites ? 'write' : 'read'}`);
      }
      if (length > 0) {
        (deviceWrites ? writable : readable).push(segment);
      }
      if ((flags & VirtqDescFlag.NEXT) === 0) {
        break;
      }
      if (next >= entries) {
        throw new VirtqueueError(this.index, `descriptor ${i} links to ${next}, outside its ${entries}-entry table`);
      }
      i = next;
    }
    return new VirtqueueRequest(this, this.host.dma, head, readable, writable, this.#epoch);
  }

  /** @internal Puts a completed chain in the used ring (see {@link VirtqueueRequest.complete}); false for an older epoch's. */
  complete(request: VirtqueueRequest, usedLength: number, epoch: number): boolean {
    if (epoch !== this.#epoch) {
      return false;
    }
    this.inFlight--;
    const slot = this.#usedIdx % this.size;
    this.#usedIdx = (this.#usedIdx + 1) & 0xffff;
    const idx = this.#usedIdx;
    const element = Buffer.alloc(USED_ELEM_SIZE);
    element.writeUInt32LE(request.head, 0);
    element.writeUInt32LE(usedLength, 4);
    const index = Buffer.alloc(2);
    index.writeUInt16LE(idx);
    this.#unpublished++;
    this.#afterUsedWrites(epoch, async () => {
      await store(this.host.dma, this.deviceAddress + RING_HEADER + USED_ELEM_SIZE * slot, element);
      if (epoch !== this.#epoch) {
        return; // stopped or reset between the two writes: used.idx stays
      }
      await store(this.host.dma, this.deviceAddress + 2, index);
      if (epoch !== this.#epoch) {
        return;
      }
      this.#publishedUsed = idx;
      this.#outstanding.delete(request.head);
      // The last completion written decides on the interrupt for all
      // written since the previous decision.
      if (--this.#unpublished === 0) {
        await this.#maybeInterrupt(epoch);
      }
    });
    return true;
  }

  #afterUsedWrites(epoch: number, work: () => Promise<void>): void {
    this.#usedWrites = this.#usedWrites.then(async () => {
      if (epoch !== this.#epoch) {
        return;
      }
      try {
        await work();
      } catch (err) {
        if (epoch === this.#epoch) {
          this.host.fail(this, err as Error);
        }
      }
    });
  }

  /** Interrupts unless the driver asked not to be (used_event, or avail.flags without EVENT_IDX). */
  async #maybeInterrupt(epoch: number): Promise<void> {
    const published = this.#publishedUsed;
    const previous = this.#signalledUsed;
    if (published === previous) {
      return;
    }
    let wanted: boolean;
    if (this.host.negotiated(VirtioFeature.RING_EVENT_IDX)) {
      const usedEvent = await this.#readU16(this.driverAddress + RING_HEADER + 2 * this.size);
      // The spec's vring_need_event: did the index step past used_event?
      wanted = ((published - usedEvent - 1) & 0xffff) < ((published - previous) & 0xffff);
    } else {
      wanted = ((await this.#readU16(this.driverAddress)) & VirtqRingFlag.AVAIL_NO_INTERRUPT) === 0;
    }
    if (epoch !== this.#epoch) {
      return;
    }
    this.#signalledUsed = published;
    if (wanted) {
      this.host.interrupt(this);
    }
  }
}
