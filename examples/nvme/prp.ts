/**
 * Physical Region Page walking: turns a command's PRP1 / PRP2 into the guest
 * memory segments of its data buffer, checking every entry the way the
 * specification constrains it (dword-aligned first entry, page-aligned
 * others, list pointers qword-aligned, no list read beyond what the length
 * needs).
 */
import type { DmaSpace } from 'vfio-user';

import { CommandError } from './command-error';
import { Status } from './constants';

/** A run of guest memory. */
export interface Segment {
  readonly iova: number;
  readonly length: number;
}

const PRP_ENTRY_SIZE = 8;

function address(value: bigint, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CommandError(Status.DATA_TRANSFER_ERROR | Status.DNR, `${what} 0x${value.toString(16)} is beyond addressable memory`);
  }
  return Number(value);
}

function pushSegment(segments: Segment[], iova: number, length: number): void {
  const last = segments[segments.length - 1];
  if (last !== undefined && last.iova + last.length === iova) {
    segments[segments.length - 1] = { iova: last.iova, length: last.length + length };
  } else {
    segments.push({ iova, length });
  }
}

/**
 * The segments `length` bytes of data occupy, described by PRP1 and PRP2
 * with memory page size `pageSize`. Reads PRP lists from guest memory.
 *
 * @throws CommandError PRP Offset Invalid for a misaligned entry, Data Transfer Error for a list it cannot read
 */
export async function walkPrps(dma: DmaSpace, prp1: bigint, prp2: bigint, length: number, pageSize: number): Promise<Segment[]> {
  const first = address(prp1, 'PRP1');
  if ((first & 0x3) !== 0) {
    throw new CommandError(Status.PRP_OFFSET_INVALID | Status.DNR, `PRP1 0x${first.toString(16)} is not dword-aligned`);
  }
  const segments: Segment[] = [];
  const firstLength = Math.min(length, pageSize - (first % pageSize));
  pushSegment(segments, first, firstLength);
  let remaining = length - firstLength;
  if (remaining === 0) {
    return segments;
  }
  const second = address(prp2, 'PRP2');
  if (remaining <= pageSize) {
    if (second % pageSize !== 0) {
      throw new CommandError(Status.PRP_OFFSET_INVALID | Status.DNR, `PRP2 data pointer 0x${second.toString(16)} has a page offset`);
    }
    pushSegment(segments, second, remaining);
    return segments;
  }
  if ((second & 0x7) !== 0) {
    throw new CommandError(Status.PRP_OFFSET_INVALID | Status.DNR, `PRP2 list pointer 0x${second.toString(16)} is not qword-aligned`);
  }
  let list = second;
  while (remaining > 0) {
    // Entries left in this list page; the last one chains to the next page when more pages remain.
    const slots = (pageSize - (list % pageSize)) / PRP_ENTRY_SIZE;
    const pagesNeeded = Math.ceil(remaining / pageSize);
    const entries = Math.min(slots, pagesNeeded);
    let raw: Buffer;
    try {
      raw = await dma.read(list, entries * PRP_ENTRY_SIZE);
    } catch (err) {
      throw new CommandError(Status.DATA_TRANSFER_ERROR, `PRP list at 0x${list.toString(16)}: ${(err as Error).message}`);
    }
    const chains = pagesNeeded > slots;
    const dataEntries = chains ? entries - 1 : entries;
    for (let i = 0; i < dataEntries; i++) {
      const page = address(raw.readBigUInt64LE(i * PRP_ENTRY_SIZE), 'PRP entry');
      if (page % pageSize !== 0) {
        throw new CommandError(Status.PRP_OFFSET_INVALID | Status.DNR, `PRP entry 0x${page.toString(16)} has a page offset`);
      }
      const n = Math.min(pageSize, remaining);
      pushSegment(segments, page, n);
      remaining -= n;
    }
    if (chains) {
      list = address(raw.readBigUInt64LE(dataEntries * PRP_ENTRY_SIZE), 'PRP list pointer');
      if (list % pageSize !== 0) {
        throw new CommandError(Status.PRP_OFFSET_INVALID | Status.DNR, `chained PRP list 0x${list.toString(16)} is not page-aligned`);
      }
    }
  }
  return segments;
}

/** Copies `data` to the segments in order (device to host). */
export async function writeSegments(dma: DmaSpace, segments: readonly Segment[], data: Buffer): Promise<void> {
  let at = 0;
  try {
    await Promise.all(segments.map((segment) => {
      const piece = data.subarray(at, at + segment.length);
      at += segment.length;
      return dma.write(segment.iova, piece);
    }));
  } catch (err) {
    throw new CommandError(Status.DATA_TRANSFER_ERROR, `writing guest memory: ${(err as Error).message}`);
  }
}

/** Copies the segments, in order, into `data` (host to device). */
export async function readSegments(dma: DmaSpace, segments: readonly Segment[], data: Buffer): Promise<void> {
  let at = 0;
  try {
    await Promise.all(segments.map((segment) => {
      const piece = data.subarray(at, at + segment.length);
      at += segment.length;
      return dma.read(segment.iova, piece);
    }));
  } catch (err) {
    throw new CommandError(Status.DATA_TRANSFER_ERROR, `reading guest memory: ${(err as Error).message}`);
  }
}
