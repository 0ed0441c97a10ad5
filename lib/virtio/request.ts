/**
 * `VirtqueueRequest`: one descriptor chain the driver made available, as
 * the device sees it: the parts it reads, the parts it writes, and a
 * completion with the number of bytes written.
 *
 * @packageDocumentation
 */
import type { DmaSpace } from '../dma';
import { type GuestSegment, viewOf } from './guest-buffers';

/** What a request needs from its queue. @internal */
export interface RequestOwner {
  readonly index: number;
  /** Puts the chain in the used ring; false when the request belongs to a queue that was reset since. */
  complete(request: VirtqueueRequest, usedLength: number, epoch: number): boolean;
  /** Whether work of `epoch` still counts. */
  isCurrent(epoch: number): boolean;
}

/**
 * A descriptor chain taken from a queue's available ring. Its buffers were
 * checked when it was taken: every one lies in memory the client mapped,
 * with the permission its direction needs. Read its `readable` part, write
 * its `writable` part, then {@link VirtqueueRequest.complete} it, in any
 * order with other requests.
 */
export class VirtqueueRequest {
  /** Bytes the device may read (driver to device), in order. */
  readonly readableLength: number;
  /** Bytes the device may write (device to driver), in order. */
  readonly writableLength: number;
  #completed = false;

  /** @internal */
  constructor(
    private readonly owner: RequestOwner,
    private readonly dma: DmaSpace,
    /** Index of the chain's first descriptor: its ID in the used ring. */
    readonly head: number,
    /** The device-readable buffers, in chain order. */
    readonly readable: readonly GuestSegment[],
    /** The device-writable buffers, in chain order. */
    readonly writable: readonly GuestSegment[],
    /** The queue's epoch when the chain was taken: a reset since makes the completion void. */
    private readonly epoch: number,
  ) {
    this.readableLength = readable.reduce((sum, s) => sum + s.length, 0);
    this.writableLength = writable.reduce((sum, s) => sum + s.length, 0);
  }

  /** Index of the queue the request came from. */
  get queueIndex(): number {
    return this.owner.index;
  }

  /**
   * Whether the request no longer counts: its queue was reset, or the
   * device stopped for migration (where it resumes, the chain is served
   * again), since it was taken. Completing it does nothing.
   */
  get dropped(): boolean {
    return !this.owner.isCurrent(this.epoch);
  }

  /** Whether {@link VirtqueueRequest.complete} was called. */
  get completed(): boolean {
    return this.#completed;
  }

  /**
   * Copies `length` bytes of the readable part from byte `offset` of it, on
   * both memory paths.
   *
   * @throws RangeError when the range is not inside the readable part
   * @throws `DmaError` (rejects with) when the client unmapped the memory meanwhile
   */
  async read(offset = 0, length = this.readableLength - offset): Promise<Buffer> {
    checkWithin('readable', offset, length, this.readableLength);
    const target = Buffer.allocUnsafe(length);
    await Promise.all(pieces(this.readable, offset, length).map(({ segment, at, from, n }) =>
      this.dma.read(segment.address + at, target.subarray(from, from + n))));
    return target;
  }

  /**
   * Copies `data` into the writable part at byte `offset` of it, on both
   * memory paths.
   *
   * @throws RangeError when it does not fit in the writable part
   * @throws `DmaError` (rejects with) when the client unmapped the memory meanwhile
   */
  async write(data: Uint8Array, offset = 0): Promise<void> {
    checkWithin('writable', offset, data.length, this.writableLength);
    await Promise.all(pieces(this.writable, offset, data.length).map(({ segment, at, from, n }) =>
      this.dma.write(segment.address + at, data.subarray(from, from + n))));
  }

  /**
   * Zero-copy views of the readable or writable buffers, one per
   * descriptor, when all of them are in memory the client shares with this
   * process; undefined otherwise (use `read()` / `write()`). Writes through
   * a view reach guest memory directly.
   */
  views(part: 'readable' | 'writable'): Buffer[] | undefined {
    const views: Buffer[] = [];
    for (const segment of part === 'readable' ? this.readable : this.writable) {
      const view = viewOf(this.dma, segment.address, segment.length);
      if (view === undefined) {
        return undefined;
      }
      views.push(view);
    }
    return views;
  }

  /**
   * Returns the chain to the driver through the used ring, telling it that
   * `usedLength` bytes of the writable part were written, and interrupts it
   * as the ring's suppression rules allow. A request completed after its
   * queue was reset is dropped.
   *
   * @returns whether the chain went into the used ring
   * @throws Error when the request was already completed
   * @throws RangeError when `usedLength` is more than the writable part
   */
  complete(usedLength: number): boolean {
    if (this.#completed) {
      throw new Error(`request ${this.head} of queue ${this.owner.index} was already completed`);
    }
    checkWithin('writable', 0, usedLength, this.writableLength);
    this.#completed = true;
    return this.owner.complete(this, usedLength, this.epoch);
  }
}

function checkWithin(part: string, offset: number, length: number, size: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new RangeError(`${length} bytes at ${offset} are outside the ${size}-byte ${part} part of the request`);
  }
}

/** The pieces of segments that bytes [offset, offset + length) of their concatenation fall in. */
function pieces(segments: readonly GuestSegment[], offset: number, length: number): Array<{ segment: GuestSegment; at: number; from: number; n: number }> {
  const out: Array<{ segment: GuestSegment; at: number; from: number; n: number }> = [];
  let skip = offset;
  let from = 0;
  for (const segment of segments) {
    if (from >= length) {
      break;
    }
    if (skip >= segment.length) {
      skip -= segment.length;
      continue;
    }
    const n = Math.min(segment.length - skip, length - from);
    out.push({ segment, at: skip, from, n });
    from += n;
    skip = 0;
  }
  return out;
}
