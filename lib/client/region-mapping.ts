/**
 * A region mapped into the client through the fd of its region info, area
 * by area as the sparse-mmap capability lists them (what QEMU does): its
 * bytes are then read and written with no message at all.
 *
 * @packageDocumentation
 */
import { ArgumentError } from '../errors';
import { os } from '../native';
import type { RegionInfo } from './region-client';

/** One mapped area of a region. */
export interface MappedArea {
  /** Offset in the region. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
  /** The area's bytes, shared with the server; detached by {@link RegionMapping.unmap}. */
  readonly memory: Buffer;
}

/** The mappable areas of a region, mapped into this process. */
export class RegionMapping {
  /** Region index. */
  readonly region: number;
  /** The areas, in offset order. */
  readonly areas: readonly MappedArea[];
  #mapped = true;

  /** @internal Maps each area of `info` through its fd; closes the fd. */
  constructor(info: RegionInfo) {
    this.region = info.index;
    const { fd } = info;
    try {
      if (!info.mappable || fd === undefined) {
        throw new ArgumentError('region', `${info.index} is not mappable: its info has ${info.mappable ? 'no fd' : 'no MMAP flag'}`, 'mmap');
      }
      const listed = info.sparseAreas.length > 0 ? info.sparseAreas : [{ offset: 0, size: info.size }];
      const areas: MappedArea[] = [];
      try {
        for (const area of [...listed].sort((a, b) => a.offset - b.offset)) {
          const memory = Buffer.from(os.mmap(fd, info.offset + area.offset, area.size, info.writable));
          areas.push({ offset: area.offset, size: area.size, memory });
        }
      } catch (err) {
        areas.forEach((area) => os.munmap(area.memory.buffer as ArrayBuffer));
        throw err;
      }
      this.areas = areas;
    } finally {
      if (fd !== undefined) {
        os.close(fd); // the mappings keep the memory
      }
    }
  }

  /**
   * `length` bytes at region offset `offset`, inside one mapped area: reads
   * and writes of the view are the client's accesses, with no message.
   *
   * @throws {@link ArgumentError} when the range is not inside one mapped area, or after unmap()
   */
  view(offset: number, length: number): Buffer {
    if (!this.#mapped) {
      throw new ArgumentError('region', `${this.region} was unmapped`, 'mmap');
    }
    const area = this.areas.find((a) => offset >= a.offset && offset + length <= a.offset + a.size);
    if (area === undefined || length < 0) {
      throw new ArgumentError('offset', `0x${offset.toString(16)}..0x${(offset + length).toString(16)} is not inside one mapped area of region ${this.region}`, 'mmap');
    }
    return area.memory.subarray(offset - area.offset, offset - area.offset + length);
  }

  /** Unmaps every area; their buffers are detached. Idempotent. */
  unmap(): void {
    if (this.#mapped) {
      this.#mapped = false;
      for (const area of this.areas) {
        os.munmap(area.memory.buffer as ArrayBuffer);
      }
    }
  }
}
