/**
 * Guest memory as a virtqueue reaches it: ranges checked against what the
 * client mapped before anything is read, zero-copy views where the memory
 * is shared, and DMA messages where it is not.
 *
 * @packageDocumentation
 */
import type { DmaSpace } from '../dma';

/** One buffer a descriptor points at, in guest (DMA) addresses. */
export interface GuestSegment {
  /** Guest address of the first byte. */
  readonly address: number;
  /** Length in bytes. */
  readonly length: number;
}

/**
 * Whether every byte of the range is in memory the client mapped with the
 * permission needed (`'read'`: the device reads it; `'write'`: it writes it).
 */
export function isMapped(dma: DmaSpace, address: number, length: number, access: 'read' | 'write'): boolean {
  if (!Number.isSafeInteger(address) || address < 0 || !Number.isSafeInteger(address + length)) {
    return false;
  }
  let at = address;
  const end = address + length;
  for (const mapping of dma.mappings) {
    if (at >= end) {
      break;
    }
    const mappingEnd = mapping.iova + mapping.length;
    if (mappingEnd <= at) {
      continue;
    }
    if (mapping.iova > at || !(access === 'read' ? mapping.readable : mapping.writable)) {
      return false;
    }
    at = mappingEnd;
  }
  return at >= end;
}

/** A zero-copy view of the range when it lies in one mapping shared with this process, else undefined. */
export function viewOf(dma: DmaSpace, address: number, length: number): Buffer | undefined {
  for (const mapping of dma.mappings) {
    if (address >= mapping.iova && address + length <= mapping.iova + mapping.length) {
      return mapping.mapped && mapping.readable && mapping.writable ? dma.view(address, length) : undefined;
    }
  }
  return undefined;
}

/** The bytes of a range: a live view where the memory is shared, a copy read by DMA messages where not. */
export async function load(dma: DmaSpace, address: number, length: number): Promise<Buffer> {
  return viewOf(dma, address, length) ?? dma.read(address, length);
}

/** Writes bytes at `address`: directly where the memory is shared (done on return), by DMA_WRITE otherwise. */
export async function store(dma: DmaSpace, address: number, data: Uint8Array): Promise<void> {
  if (viewOf(dma, address, data.length) !== undefined) {
    dma.writeSync(address, data); // marks the pages dirty for a migration's log
    return;
  }
  await dma.write(address, data);
}
