/**
 * Guest memory for DMA: a memfd the client maps itself and passes to the
 * server with DMA_MAP, so both sides share the same pages.
 *
 * @packageDocumentation
 */
import { errorFromCode } from '../errors';
import { os } from '../native';

/**
 * A range of "guest" memory at an IOVA, backed by a memfd and mapped into
 * this process. The server maps the same memfd, so what the device writes by
 * DMA appears in {@link GuestMemory.buffer} at once, and the other way round.
 */
export class GuestMemory {
  /** The memfd; the object owns it. */
  readonly fd: number;
  /** The memory, zero-copy; empty once closed. */
  readonly buffer: Buffer;
  private readonly mapping: ArrayBuffer;
  private closed = false;

  /**
   * Creates and maps the memfd.
   *
   * @param iova - DMA address of the first byte
   * @param size - bytes
   */
  constructor(
    readonly iova: number,
    readonly size: number,
  ) {
    if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(size) || size <= 0) {
      throw new RangeError(`guest memory needs a non-negative iova and a positive size, not ${iova}/${size}`);
    }
    this.fd = os.memfd(`vfio-user-guest-0x${iova.toString(16)}`, size);
    try {
      this.mapping = os.mmap(this.fd, 0, size, true);
    } catch (err) {
      os.close(this.fd);
      throw err;
    }
    this.buffer = Buffer.from(this.mapping);
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

  /** Unmaps and closes the memfd. Idempotent. */
  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    os.munmap(this.mapping);
    os.close(this.fd);
  }
}
