/**
 * Guest memory for DMA: either a memfd the client maps itself and passes to
 * the server with DMA_MAP, so both sides share the same pages, or memory of
 * the client's own that the server reaches through DMA_READ / DMA_WRITE
 * messages.
 *
 * @packageDocumentation
 */
import { ArgumentError, errorFromCode } from '../errors';
import { os } from '../native';

/** How a {@link GuestMemory} is created. */
export interface GuestMemoryOptions {
  /**
   * Back it with a memfd that goes to the server with DMA_MAP, which maps
   * it (default); false: plain memory of this process, which the server
   * reaches through DMA_READ / DMA_WRITE messages to the client.
   */
  readonly shared?: boolean;
  /** The device may read it (default true). */
  readonly readable?: boolean;
  /** The device may write it (default true). */
  readonly writable?: boolean;
}

/**
 * A range of "guest" memory at an IOVA. Shared memory is a memfd mapped
 * into this process and into the server, so what the device writes by DMA
 * appears in {@link GuestMemory.buffer} at once, and the other way round.
 * Unshared memory lives here only; the client copies it for the server's
 * DMA_READ and DMA_WRITE messages.
 */
export class GuestMemory {
  /** The memfd, for shared memory (the object owns it); undefined otherwise. */
  readonly fd: number | undefined;
  /** Mapped by the server from {@link GuestMemory.fd}, rather than reached by messages. */
  readonly shared: boolean;
  /** The device may read it. */
  readonly readable: boolean;
  /** The device may write it. */
  readonly writable: boolean;
  private readonly mapping: ArrayBuffer | undefined;
  private memory: Buffer;
  private closed = false;

  /**
   * Creates the memory (and maps the memfd, for shared memory).
   *
   * @param iova - DMA address of the first byte
   * @param size - bytes
   */
  constructor(
    readonly iova: number,
    readonly size: number,
    options: GuestMemoryOptions = {},
  ) {
    if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(size) || size <= 0) {
      throw new ArgumentError('iova and size', `must be a non-negative iova and a positive size, not ${iova}/${size}`, 'guest memory');
    }
    this.shared = options.shared !== false;
    this.readable = options.readable !== false;
    this.writable = options.writable !== false;
    if (!this.shared) {
      this.memory = Buffer.alloc(size);
      return;
    }
    const fd = os.memfd(`vfio-user-guest-0x${iova.toString(16)}`, size);
    try {
      this.mapping = os.mmap(fd, 0, size, true);
    } catch (err) {
      os.close(fd);
      throw err;
    }
    this.fd = fd;
    this.memory = Buffer.from(this.mapping);
  }

  /** The memory, zero-copy; empty once closed. */
  get buffer(): Buffer {
    return this.memory;
  }

  /** True when `[iova, iova + length)` lies inside this memory. */
  contains(iova: number, length: number): boolean {
    return iova >= this.iova && length >= 0 && iova + length <= this.iova + this.size;
  }

  /** Copies `length` bytes out of the memory at `iova`. */
  read(iova: number, length: number): Buffer {
    return Buffer.from(this.view(iova, length));
  }

  /** Copies `data` into the memory at `iova`. */
  write(iova: number, data: Uint8Array): void {
    this.view(iova, data.length).set(data);
  }

  /** A zero-copy view of `length` bytes at `iova`. */
  view(iova: number, length: number): Buffer {
    if (this.closed || !this.contains(iova, length)) {
      throw errorFromCode('EFAULT', 'guest memory', `0x${iova.toString(16)} (+${length}) is not inside 0x${this.iova.toString(16)} (+${this.size})`);
    }
    return this.buffer.subarray(iova - this.iova, iova - this.iova + length);
  }

  /** Unmaps and closes the memfd, or lets unshared memory go; the buffer becomes empty. Idempotent. */
  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    if (this.mapping !== undefined && this.fd !== undefined) {
      os.munmap(this.mapping);
      os.close(this.fd);
    }
    // Unshared memory goes with the garbage collector; emptied like a mapping.
    this.memory = Buffer.alloc(0);
  }
}
