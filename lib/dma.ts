/**
 * `device.dma`: the client's (guest's) memory as the device reaches it by
 * DMA, at the addresses (IOVAs) the client mapped it at.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';

import { DeviceStoppedError, DmaError, errorFromCode } from './errors';
import { copyBytes as nativeCopy } from './native';

/** A range of client memory the client made available for DMA (one DMA_MAP). */
export interface DmaMapping {
  /** Address of the first byte in the client's (guest's) DMA address space. */
  readonly iova: number;
  /** Length in bytes. */
  readonly length: number;
  /** The device may read it. */
  readonly readable: boolean;
  /** The device may write it. */
  readonly writable: boolean;
  /**
   * The memory is mapped into this process (the client passed a file
   * descriptor): `view()`, `readSync()` and `writeSync()` reach it directly.
   * Otherwise only `read()` and `write()` reach it, through DMA_READ and
   * DMA_WRITE messages to the client.
   */
  readonly mapped: boolean;
}

/** Events of {@link DmaSpace}. */
export interface DmaSpaceEvents {
  /** The client mapped memory. */
  map: [mapping: DmaMapping];
  /**
   * The client unmapped memory (or went away). The mapping has left
   * `mappings`; views taken before still work until the listeners return,
   * then they are empty.
   */
  unmap: [mapping: DmaMapping];
  /** The device reported a failed DMA the guest programmed ({@link DmaSpace.reportFault}). */
  fault: [error: Error];
}

/**
 * Moves bytes through DMA_READ (into `data`) or DMA_WRITE (from `data`)
 * messages; settles with 0 or a positive errno once the client answered.
 * @internal
 */
export type DmaTransfer = (iova: number, data: Uint8Array, isWrite: boolean) => Promise<number>;

/** What the server lends a device's DMA space while it serves it. @internal */
export interface DmaPort {
  /** The message path. */
  readonly transfer: DmaTransfer;
  /** Records mapped memory the device wrote, for the client's dirty-page log. */
  readonly markDirty: (iova: number, length: number) => void;
}

interface Entry {
  readonly mapping: DmaMapping;
  readonly start: number;
  readonly end: number;
  /** The mapped memory; detached by the addon when the client unmaps it. */
  readonly memory: Buffer | undefined;
}

const { ENOTCONN, EFAULT, ENOENT, EACCES, EPERM } = constants.errno;

let recordMap: (space: DmaSpace, mapping: DmaMapping, memory: ArrayBuffer | undefined) => void;
let recordUnmap: (space: DmaSpace, iova: number, length: number) => DmaMapping | undefined;
let bindPort: (space: DmaSpace, port: DmaPort | undefined) => void;
let setStopped: (space: DmaSpace, state: string | undefined) => void;

/**
 * Client (guest) memory, as a device reaches it by DMA: `device.dma`.
 *
 * | member | what |
 * | --- | --- |
 * | `mappings` | what the client mapped: IOVA, length, permissions, `mapped` |
 * | `'map'`, `'unmap'` events | the client mapped or unmapped a range |
 * | `view(iova, length)` | zero-copy Buffer over mapped memory |
 * | `readSync(iova, length \| target)`, `writeSync(iova, data)` | copies, mapped memory only |
 * | `read(iova, length \| target)`, `write(iova, data)` | copies on both paths: direct where mapped, DMA_READ / DMA_WRITE messages where not |
 *
 * Accesses may span adjacent mappings (except views). They are checked in
 * full before a byte moves, and fail with a {@link DmaError}: `'unmapped'`,
 * `'read-only'`, `'write-only'`, `'not-mappable'`, `'not-contiguous'`,
 * `'disconnected'` or `'refused'`.
 */
export class DmaSpace extends EventEmitter<DmaSpaceEvents> {
  /** Sorted by IOVA; mappings never overlap. */
  #entries: Entry[] = [];
  #mappings: readonly DmaMapping[] = Object.freeze([]);
  #port: DmaPort | undefined;
  /** The migration state while the device is stopped (no DMA then), else undefined. */
  #stopped: string | undefined;
  /** The entry the last synchronous access used: the next one is likely in it too. */
  #last: Entry | undefined;

  static {
    recordMap = (space, mapping, memory) => space.#map(mapping, memory);
    recordUnmap = (space, iova, length) => space.#unmap(iova, length);
    bindPort = (space, port) => {
      space.#port = port;
      if (port === undefined) {
        space.#setEntries([]);
      }
    };
    setStopped = (space, state) => {
      space.#stopped = state;
    };
  }

  /** What the connected client has mapped, by IOVA. */
  get mappings(): readonly DmaMapping[] {
    return this.#mappings;
  }

  /**
   * A zero-copy view of mapped client memory. Writing to it writes guest
   * memory. It must lie in one mapping, which must be `mapped`, readable
   * and writable: the library maps memory with the client's permissions,
   * and a write through a view of read-only memory would crash the
   * process (readSync() copies read-only memory safely).
   *
   * When the client unmaps the memory (or disconnects), the addon detaches
   * the memory's ArrayBuffer before the library unmaps it: the view, and
   * every view made from its `buffer`, then has length 0 (a DataView over
   * it throws), so a kept view can never reach memory that is gone.
   *
   * @throws {@link DmaError} `'unmapped'`, `'not-mappable'`, `'not-contiguous'`, `'read-only'` or `'write-only'`
   */
  view(iova: number, length: number): Buffer {
    this.#running();
    checkRange(iova, length);
    const i = this.#find(iova);
    const entry = this.#entries[i];
    if (entry === undefined) {
      throw new DmaError('unmapped', iova, length, `0x${iova.toString(16)} is not mapped`);
    }
    if (iova + length > entry.end) {
      this.#check(iova, length, 'none', true);
      throw new DmaError('not-contiguous', iova, length, 'the range spans two mappings; readSync() and writeSync() take such ranges');
    }
    const memory = mappedMemory(entry, iova, length);
    if (!entry.mapping.writable || !entry.mapping.readable) {
      throw new DmaError(entry.mapping.writable ? 'write-only' : 'read-only', iova, length,
        `a view needs a mapping the device may read and write; use readSync() / writeSync() for the one at 0x${entry.start.toString(16)}`);
    }
    const at = iova - entry.start;
    return memory.subarray(at, at + length);
  }

  /**
   * Copies mapped client memory into a new Buffer of `length` bytes, or
   * into `target` (all of it; no allocation) and returns it.
   *
   * @throws {@link DmaError} `'unmapped'`, `'write-only'` or `'not-mappable'` (use {@link DmaSpace.read})
   */
  readSync(iova: number, length: number): Buffer;
  readSync<T extends Uint8Array>(iova: number, target: T): T;
  readSync(iova: number, lengthOrTarget: number | Uint8Array): Uint8Array {
    this.#running();
    if (typeof lengthOrTarget === 'number') {
      // Checked before allocating: a bad length is an error, not a huge Buffer.
      this.#check(iova, lengthOrTarget, 'read', true);
      const copy = Buffer.allocUnsafe(lengthOrTarget);
      this.#copy(iova, copy, false);
      return copy;
    }
    const target = lengthOrTarget;
    const entry = this.#within(iova, target.length);
    if (entry !== undefined && entry.mapping.readable && entry.memory !== undefined) {
      copyBytes(entry.memory, iova - entry.start, target, 0, target.length, false);
      return target;
    }
    this.#check(iova, target.length, 'read', true);
    this.#copy(iova, target, false);
    return target;
  }

  /**
   * Copies `data` into mapped client memory.
   *
   * @throws {@link DmaError} `'unmapped'`, `'read-only'` or `'not-mappable'` (use {@link DmaSpace.write})
   */
  writeSync(iova: number, data: Uint8Array): void {
    this.#running();
    const entry = this.#within(iova, data.length);
    if (entry !== undefined && entry.mapping.writable && entry.memory !== undefined) {
      copyBytes(entry.memory, iova - entry.start, data, 0, data.length, true);
    } else {
      this.#check(iova, data.length, 'write', true);
      this.#copy(iova, data, true);
    }
    this.#port?.markDirty(iova, data.length);
  }

  /** Refuses DMA while the device is stopped for migration. */
  #running(): void {
    if (this.#stopped !== undefined) {
      throw new DeviceStoppedError('dma', this.#stopped);
    }
  }

  /** The hot path: the entry holding all of a valid range, else undefined (then #check says why). */
  #within(iova: number, length: number): Entry | undefined {
    if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(length) || length < 0) {
      return undefined;
    }
    let entry = this.#last;
    if (entry === undefined || iova < entry.start || iova >= entry.end) {
      entry = this.#entries[this.#find(iova)];
      if (entry === undefined) {
        return undefined;
      }
      this.#last = entry;
    }
    return iova + length <= entry.end ? entry : undefined;
  }

  /**
   * Copies client memory into a new Buffer of `length` bytes, or into
   * `target` (all of it), on either path: mapped memory directly (settled
   * at once), other memory through DMA_READ messages (which the library
   * splits at the client's `max_data_xfer_size`). Several reads and writes
   * may be in flight at once.
   *
   * `target` must not be used until the promise settles.
   *
   * @throws {@link DmaError} (rejects with) `'unmapped'`, `'write-only'`, `'disconnected'` or `'refused'`
   */
  read(iova: number, length: number): Promise<Buffer>;
  read<T extends Uint8Array>(iova: number, target: T): Promise<T>;
  async read(iova: number, lengthOrTarget: number | Uint8Array): Promise<Uint8Array> {
    if (typeof lengthOrTarget === 'number') {
      this.#running();
      this.#check(iova, lengthOrTarget, 'read', false);
    }
    const target = typeof lengthOrTarget === 'number' ? Buffer.allocUnsafe(lengthOrTarget) : lengthOrTarget;
    await this.#access(iova, target, false);
    return target;
  }

  /**
   * Copies `data` into client memory on either path, like {@link DmaSpace.read}.
   * `data` must not change until the promise settles.
   *
   * @throws {@link DmaError} (rejects with) `'unmapped'`, `'read-only'`, `'disconnected'` or `'refused'`
   */
  async write(iova: number, data: Uint8Array): Promise<void> {
    await this.#access(iova, data, true);
  }

  /**
   * Reports a DMA the guest programmed that failed (an unmapped or read-only
   * address, say): emits `'fault'`, which the server turns into its
   * `'dma-fault'` event and a warning in its log, so that the fault is seen
   * outside the device. The device itself goes on serving.
   */
  reportFault(error: Error): void {
    this.emit('fault', error);
  }

  /** Index of the entry holding `iova`, or of the first after it, or -1 past the end. */
  #find(iova: number): number {
    const entries = this.#entries;
    let lo = 0;
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (entries[mid].end <= iova) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo < entries.length && entries[lo].start <= iova ? lo : -1;
  }

  /** Throws unless every byte of the range is mapped with the access allowed. */
  #check(iova: number, length: number, access: 'read' | 'write' | 'none', sync: boolean): void {
    checkRange(iova, length);
    const end = iova + length;
    let at = iova;
    let i = this.#find(iova);
    while (at < end) {
      const entry = i < 0 ? undefined : this.#entries[i];
      if (entry === undefined || entry.start > at) {
        throw new DmaError('unmapped', iova, length, `0x${at.toString(16)} is not mapped`);
      }
      if (access === 'write' && !entry.mapping.writable) {
        throw new DmaError('read-only', iova, length, `the mapping at 0x${entry.start.toString(16)} is read-only`);
      }
      if (access === 'read' && !entry.mapping.readable) {
        throw new DmaError('write-only', iova, length, `the mapping at 0x${entry.start.toString(16)} is write-only`);
      }
      if (sync) {
        mappedMemory(entry, iova, length);
      }
      at = entry.end;
      i++;
    }
  }

  /** Copies between `data` and mapped memory; the range has been checked. */
  #copy(iova: number, data: Uint8Array, write: boolean): void {
    let i = this.#find(iova);
    let done = 0;
    while (done < data.length) {
      const entry = this.#entries[i++];
      const memory = entry.memory!;
      const at = iova + done - entry.start;
      const n = Math.min(entry.end - entry.start - at, data.length - done);
      copyBytes(memory, at, data, done, n, write);
      done += n;
    }
  }

  /** Both paths: mapped pieces copied now, the others by messages, all in parallel. */
  async #access(iova: number, data: Uint8Array, write: boolean): Promise<void> {
    this.#running();
    this.#check(iova, data.length, write ? 'write' : 'read', false);
    let i = this.#find(iova);
    let done = 0;
    const transfers: Array<Promise<void>> = [];
    while (done < data.length) {
      const entry = this.#entries[i++];
      const at = iova + done - entry.start;
      const n = Math.min(entry.end - entry.start - at, data.length - done);
      if (entry.memory !== undefined) {
        copyBytes(entry.memory, at, data, done, n, write);
        if (write) {
          this.#port?.markDirty(iova + done, n);
        }
      } else {
        const piece = done === 0 && n === data.length ? data : data.subarray(done, done + n);
        transfers.push(this.#send(iova + done, piece, write, iova, data.length));
      }
      done += n;
    }
    if (transfers.length > 0) {
      await Promise.all(transfers);
    }
  }

  async #send(at: number, piece: Uint8Array, write: boolean, iova: number, length: number): Promise<void> {
    const transfer = this.#port?.transfer;
    if (transfer === undefined) {
      throw new DmaError('disconnected', iova, length, 'no client is connected');
    }
    const errno = await transfer(at, piece, write);
    if (errno === 0) {
      return;
    }
    const where = `${write ? 'DMA_WRITE' : 'DMA_READ'} of 0x${at.toString(16)} (+0x${piece.length.toString(16)})`;
    if (errno === ENOTCONN) {
      throw new DmaError('disconnected', iova, length, `${where}: the client went away`);
    }
    if (errno === EFAULT || errno === ENOENT) {
      throw new DmaError('unmapped', iova, length, `${where}: not mapped`);
    }
    if (errno === EACCES || errno === EPERM) {
      throw new DmaError(write ? 'read-only' : 'write-only', iova, length, `${where}: not permitted`);
    }
    throw new DmaError('refused', iova, length, `${where}: the client answered with an error`, errno);
  }

  #map(mapping: DmaMapping, memory: ArrayBuffer | undefined): void {
    const entry: Entry = {
      mapping,
      start: mapping.iova,
      end: mapping.iova + mapping.length,
      memory: memory === undefined ? undefined : Buffer.from(memory),
    };
    // A mapping repeated exactly replaces the old one.
    const entries = this.#entries.filter((e) => e.start !== entry.start || e.end !== entry.end);
    entries.push(entry);
    entries.sort((a, b) => a.start - b.start);
    this.#setEntries(entries);
  }

  #unmap(iova: number, length: number): DmaMapping | undefined {
    const entry = this.#entries.find((e) => e.start === iova && e.end === iova + length);
    if (entry !== undefined) {
      this.#setEntries(this.#entries.filter((e) => e !== entry));
    }
    return entry?.mapping;
  }

  #setEntries(entries: Entry[]): void {
    this.#entries = entries;
    this.#last = undefined;
    this.#mappings = Object.freeze(entries.map((e) => e.mapping));
  }
}

function checkRange(iova: number, length: number): void {
  if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(length) || length < 0 || iova + length > Number.MAX_SAFE_INTEGER) {
    throw errorFromCode('EINVAL', 'dma', `a DMA range needs a non-negative integer iova and length, not ${iova} and ${length}`);
  }
}

function mappedMemory(entry: Entry, iova: number, length: number): Buffer {
  if (entry.memory === undefined) {
    throw new DmaError('not-mappable', iova, length,
      `the mapping at 0x${entry.start.toString(16)} has no memory in this process (the client passed no file descriptor): use dma.read() / dma.write()`);
  }
  return entry.memory;
}

/**
 * Copies `n` bytes between `memory[at..]` and `data[offset..]`, allocating
 * nothing: a whole source goes by TypedArray set(), part of one (which JS
 * could only take as a new view) by the addon.
 */
function copyBytes(memory: Buffer, at: number, data: Uint8Array, offset: number, n: number, write: boolean): void {
  if (write) {
    if (offset === 0 && n === data.length) {
      memory.set(data, at);
    } else {
      nativeCopy(memory, at, data, offset, n);
    }
  } else if (at === 0 && n === memory.length) {
    data.set(memory, offset);
  } else {
    nativeCopy(data, offset, memory, at, n);
  }
}

/** @internal The client mapped memory (`memory` when it passed an fd). */
export function dmaMapped(space: DmaSpace, mapping: DmaMapping, memory: ArrayBuffer | undefined): void {
  recordMap(space, mapping, memory);
}

/** @internal The client unmapped a range; returns its mapping if it was known. */
export function dmaUnmapped(space: DmaSpace, iova: number, length: number): DmaMapping | undefined {
  return recordUnmap(space, iova, length);
}

/** @internal Connects the server's side (undefined: the device is no longer served; forgets every mapping). */
export function dmaBind(space: DmaSpace, port: DmaPort | undefined): void {
  bindPort(space, port);
}

/** @internal Stops DMA while the device is stopped for migration (`state`), or allows it again (undefined). */
export function dmaStopped(space: DmaSpace, state: string | undefined): void {
  setStopped(space, state);
}
