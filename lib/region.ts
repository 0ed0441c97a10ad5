/**
 * What a BAR is made of: a handler that answers reads and writes at byte
 * offsets, and a RAM-backed handler.
 *
 * @packageDocumentation
 */

/**
 * Answers the accesses a client makes to a region (a BAR).
 *
 * `data` is only valid during the call: a read fills it, a write reads it.
 * Accesses may have any size and any offset inside the region. Throwing fails
 * the access: the client receives an error reply with `err.errno` when it is a
 * positive integer, EIO otherwise.
 *
 * The methods are synchronous: one that returns a Promise fails the access
 * with a {@link HandlerError} (EIO), and the promise's outcome is ignored. A
 * read returns nothing (or `data`, or a number, as Buffer's own methods do);
 * returning anything else, such as the bytes or a string, is taken for a
 * handler that meant to answer with it and fails the access too. A handler
 * that blocks blocks the whole device, and every other device served by the
 * process, for as long as it runs.
 */
export interface RegionHandler {
  /** Fills `data` with `data.length` bytes read at `offset`. */
  read(offset: number, data: Buffer): void;
  /** Takes `data.length` bytes written at `offset`. */
  write(offset: number, data: Buffer): void;
  /** Called on a device reset (not when a client merely disconnects). */
  reset?(): void;
  /**
   * The handler's state, for live migration: the library carries it to the
   * destination and gives it to `loadState` there. A handler without it
   * leaves its state to the device's own migration.
   */
  saveState?(): Uint8Array;
  /** Takes the state `saveState` gave on the source; throws if it cannot. */
  loadState?(state: Buffer): void;
}

/** The expansion ROM's handler: its bytes, zeros after them, writes ignored as on hardware. */
export class ReadOnlyRegion implements RegionHandler {
  /** @param bytes - the contents, kept (not copied) */
  constructor(private readonly bytes: Buffer) {}

  read(offset: number, data: Buffer): void {
    const copied = offset < this.bytes.length ? this.bytes.copy(data, 0, offset) : 0;
    data.fill(0, copied);
  }

  write(): void {}
}

/** A region handler backed by plain memory: what is written reads back. */
export class MemoryRegion implements RegionHandler {
  /** The region's bytes; the device may read and change them directly. */
  readonly buffer: Buffer;
  // #private: a subclass may have a member of the same name.
  readonly #clearOnReset: boolean;

  /**
   * @param size - size in bytes
   * @param options - `clearOnReset`: zero the memory on a device reset (default false)
   */
  constructor(size: number, options: { clearOnReset?: boolean } = {}) {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new RangeError(`MemoryRegion size must be a positive integer, not ${size}`);
    }
    this.buffer = Buffer.alloc(size);
    this.#clearOnReset = options.clearOnReset ?? false;
  }

  /** Copies out of the memory; bytes past its end read as zero. */
  read(offset: number, data: Buffer): void {
    const copied = offset < this.buffer.length ? this.buffer.copy(data, 0, offset) : 0;
    data.fill(0, copied);
  }

  /** Copies into the memory; bytes past its end are dropped. */
  write(offset: number, data: Buffer): void {
    if (offset < this.buffer.length) {
      data.copy(this.buffer, offset, 0, Math.min(data.length, this.buffer.length - offset));
    }
  }

  /** A copy of the memory, for migration. */
  saveState(): Uint8Array {
    return Buffer.from(this.buffer);
  }

  /** Puts back memory saved by {@link MemoryRegion.saveState}. */
  loadState(state: Buffer): void {
    if (state.length !== this.buffer.length) {
      throw new RangeError(`a saved MemoryRegion of ${state.length} bytes does not fit this one of ${this.buffer.length}`);
    }
    state.copy(this.buffer);
  }

  /** Zeroes the memory if it was created with `clearOnReset`. */
  reset(): void {
    if (this.#clearOnReset) {
      this.buffer.fill(0);
    }
  }
}
