/**
 * Mapped BARs: the shared memory behind a BAR's mapped ranges, and the
 * handler that serves the client's trapped accesses to those ranges from
 * the same memory (a client that does not map them still sees the bytes
 * one that does would).
 *
 * @packageDocumentation
 */
import { guardDetachable } from './detachable-memory';
import type { BarRange } from './description';
import { checkReadResult, refuseThenable } from './handler-results';
import { os } from './native';
import type { RegionHandler } from './region';

/** A mapped BAR's memory: an fd the client maps, and this process's mapping of it. */
export interface BarMemory {
  /** A sealed memfd as large as the BAR (the library passes it to the client). */
  readonly fd: number;
  /** The whole BAR's bytes, shared with every client mapping. */
  readonly buffer: Buffer;
}

/** Closes a BAR's memfd once its device is collected; the mapping goes with its buffer. */
const fdCloser = new FinalizationRegistry<number>((fd) => {
  os.close(fd);
});

/**
 * Creates the memory of BAR `index`, sized to the BAR and sealed against
 * resizing. `owner` is the object whose life the fd lasts.
 */
export function createBarMemory(owner: object, index: number, size: number): BarMemory {
  const fd = os.memfd(`vfio-user-bar${index}`, size, true);
  let mapping: ArrayBuffer;
  try {
    mapping = os.mmap(fd, 0, size, true);
  } catch (err) {
    os.close(fd);
    throw err;
  }
  // Transferring it away would detach the device's view of its own BAR
  // (Node 24+ refuse to transfer external memory; marking it there aborts at exit).
  guardDetachable(mapping);
  fdCloser.register(owner, fd);
  return { fd, buffer: Buffer.from(mapping) };
}

/**
 * A mapped BAR as the server serves it: trapped accesses inside the mapped
 * ranges read and write the memory, the others go to the device's handler
 * (or read as zeros without one). Counts the accesses to mapped ranges that
 * came as messages.
 */
export class MappedBarHandler implements RegionHandler {
  /** Accesses to the mapped ranges that came as REGION_READ / REGION_WRITE messages. */
  messages = 0;

  /**
   * @param memory - the BAR's memory
   * @param ranges - its mapped ranges, in offset order
   * @param trapped - the device's handler of the rest of the BAR, if any
   * @param name - the BAR, as errors of the handler's pieces name it
   */
  constructor(
    private readonly memory: Buffer,
    private readonly ranges: readonly BarRange[],
    private readonly trapped: RegionHandler | undefined,
    private readonly name: string,
  ) {}

  read(offset: number, data: Buffer): unknown {
    if (!this.touchesMapped(offset, data.length)) {
      // The server checks what the handler returned, as for any BAR.
      return this.trapped?.read(offset, data);
    }
    this.split(offset, data, false);
    return undefined;
  }

  write(offset: number, data: Buffer): unknown {
    if (!this.touchesMapped(offset, data.length)) {
      return this.trapped?.write(offset, data);
    }
    this.split(offset, data, true);
    return undefined;
  }

  private touchesMapped(offset: number, count: number): boolean {
    for (const range of this.ranges) {
      if (offset < range.offset + range.size && range.offset < offset + count) {
        return true;
      }
    }
    return false;
  }

  /** Serves an access in pieces, at the edges of the mapped ranges. */
  private split(offset: number, data: Buffer, isWrite: boolean): void {
    const end = offset + data.length;
    let at = offset;
    for (const range of this.ranges) {
      const rangeEnd = range.offset + range.size;
      if (rangeEnd <= at || range.offset >= end) {
        continue;
      }
      if (range.offset > at) {
        this.toHandler(data.subarray(at - offset, range.offset - offset), at, isWrite);
        at = range.offset;
      }
      const stop = Math.min(end, rangeEnd);
      if (isWrite) {
        data.copy(this.memory, at, at - offset, stop - offset);
      } else {
        this.memory.copy(data, at - offset, at, stop);
      }
      at = stop;
    }
    this.messages++;
    if (at < end) {
      this.toHandler(data.subarray(at - offset), at, isWrite);
    }
  }

  private toHandler(part: Buffer, offset: number, isWrite: boolean): void {
    if (this.trapped === undefined) {
      return; // a read's bytes are already zero
    }
    if (isWrite) {
      refuseThenable(this.trapped.write(offset, part), `${this.name} write handler`);
    } else {
      checkReadResult(this.trapped.read(offset, part), part, `${this.name} read handler`);
    }
  }
}
