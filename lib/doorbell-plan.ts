/**
 * Doorbells as a description declares them, validated against its BARs:
 * where each is, which writes kick it, and the ioeventfd flags the library
 * offers the client for it.
 *
 * @packageDocumentation
 */
import { msixPbaSize, msixTableSize, type MsixLayout } from './capabilities';
import { RegionFlag } from './constants';
import type { DoorbellDescription } from './description';
import { checkFields, checkInteger, checkObject, hex } from './description-checks';
import type { PlannedBar } from './device-plan';
import { DeviceDescriptionError } from './errors';

/** A doorbell of a device, as {@link PciDevice.onDoorbell} names it. */
export interface Doorbell {
  /** Its place in the description's `doorbells`. */
  readonly index: number;
  /** Its name (`doorbell N` when the description gives none). */
  readonly name: string;
  /** The BAR it is in. */
  readonly bar: number;
  /** Its offset in the BAR. */
  readonly offset: number;
  /** The size of the writes that kick it: 1, 2, 4 or 8 bytes. */
  readonly size: number;
  /** The only value whose writes kick it, if it has one. */
  readonly datamatch?: bigint;
}

/** `KVM_IOEVENTFD_FLAG_*`, as GET_REGION_IO_FDS carries them. */
export const IoeventfdFlag = {
  /** Only writes of the entry's datamatch value signal it. */
  DATAMATCH: 0x1,
  /** The offset is in I/O space (an I/O BAR). */
  PIO: 0x2,
} as const;

const DOORBELL_FIELDS = ['name', 'bar', 'offset', 'size', 'datamatch'] as const;
const DOORBELL_SIZES = [1, 2, 4, 8];

/** The ioeventfd flags the library registers a doorbell in `bar` with. */
export function ioeventfdFlags(doorbell: Doorbell, bar: PlannedBar): number {
  return (doorbell.datamatch !== undefined ? IoeventfdFlag.DATAMATCH : 0) | ((bar.flags & RegionFlag.MEM) === 0 ? IoeventfdFlag.PIO : 0);
}

function checkDatamatch(field: string, value: unknown, size: number): bigint | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new DeviceDescriptionError(field, `must be a non-negative integer (or a bigint), not ${value}`);
  }
  if (typeof value !== 'number' && typeof value !== 'bigint') {
    throw new DeviceDescriptionError(field, `must be a number or a bigint, not ${typeof value}`);
  }
  const datamatch = BigInt(value);
  if (datamatch < 0n || datamatch >= 1n << BigInt(8 * size)) {
    throw new DeviceDescriptionError(field, `0x${datamatch.toString(16)} does not fit the doorbell's ${size} bytes`);
  }
  return datamatch;
}

/** The bytes of `bar` the library answers itself, which no write of the device's can reach. */
function msixRanges(bar: number, msix: MsixLayout | undefined): Array<[string, number, number]> {
  const ranges: Array<[string, number, number]> = [];
  if (msix?.tableBar === bar) {
    ranges.push(['MSI-X table', msix.tableOffset, msixTableSize(msix.vectors)]);
  }
  if (msix?.pbaBar === bar) {
    ranges.push(['MSI-X PBA', msix.pbaOffset, msixPbaSize(msix.vectors)]);
  }
  return ranges;
}

function checkDoorbell(d: DoorbellDescription, index: number, bars: readonly PlannedBar[], msix: MsixLayout | undefined): Doorbell {
  const field = `doorbells[${index}]`;
  checkObject(field, d);
  checkFields(field, d, DOORBELL_FIELDS);
  if (d.name !== undefined && (typeof d.name !== 'string' || d.name === '')) {
    throw new DeviceDescriptionError(`${field}.name`, 'must be a non-empty string');
  }
  const barIndex = checkInteger(`${field}.bar`, d.bar, 0, 5);
  const bar = bars.find((b) => b.index === barIndex);
  if (bar === undefined) {
    const indices = bars.map((b) => b.index).join(', ');
    throw new DeviceDescriptionError(`${field}.bar`, `the device has no BAR ${barIndex} (it has ${indices === '' ? 'none' : indices})`);
  }
  if (typeof d.size !== 'number' || !DOORBELL_SIZES.includes(d.size)) {
    throw new DeviceDescriptionError(`${field}.size`, `a doorbell is written 1, 2, 4 or 8 bytes at a time, not ${String(d.size)}`);
  }
  const { size } = d;
  const offset = checkInteger(`${field}.offset`, d.offset, 0, Number.MAX_SAFE_INTEGER);
  if (offset + size > bar.size) {
    throw new DeviceDescriptionError(`${field}.offset`, `${hex(offset)} (${size} bytes) lies outside BAR ${barIndex} (${hex(bar.size)} bytes)`);
  }
  for (const [what, start, length] of msixRanges(barIndex, msix)) {
    if (offset < start + length && start < offset + size) {
      throw new DeviceDescriptionError(`${field}.offset`, `${hex(offset)} is on the ${what} (${hex(start)}..${hex(start + length)}), which the library answers`);
    }
  }
  for (const range of bar.mapped ?? []) {
    if (offset < range.offset + range.size && range.offset < offset + size) {
      throw new DeviceDescriptionError(
        `${field}.offset`,
        `${hex(offset)} is in BAR ${barIndex}'s mapped range ${hex(range.offset)}..${hex(range.offset + range.size)}, where a mapping client's writes send no message and ring nothing`,
      );
    }
  }
  const rules = bar.access;
  if (rules?.sizeMask !== undefined && (rules.sizeMask & (1 << size)) === 0) {
    throw new DeviceDescriptionError(`${field}.size`, `BAR ${barIndex}'s access rules refuse ${size}-byte writes, so a client without ioeventfds could never ring it`);
  }
  if (rules?.aligned === true && offset % size !== 0) {
    throw new DeviceDescriptionError(`${field}.offset`, `BAR ${barIndex} takes only aligned accesses; ${hex(offset)} is not a multiple of ${size}`);
  }
  const datamatch = checkDatamatch(`${field}.datamatch`, d.datamatch, size);
  return Object.freeze({ index, name: d.name ?? `doorbell ${index}`, bar: barIndex, offset, size, ...(datamatch !== undefined ? { datamatch } : {}) });
}

/**
 * Validates the doorbells. Two doorbells at the same place (BAR, offset and
 * size) are one too many unless both have a datamatch and the two differ:
 * a write could not tell which to kick.
 *
 * @throws {@link DeviceDescriptionError} naming the first doorbell that is wrong
 */
export function checkDoorbells(
  doorbells: readonly DoorbellDescription[] | undefined,
  bars: readonly PlannedBar[],
  msix: MsixLayout | undefined,
): Doorbell[] {
  if (doorbells === undefined) {
    return [];
  }
  if (!Array.isArray(doorbells)) {
    throw new DeviceDescriptionError('doorbells', 'must be an array');
  }
  const checked = (doorbells as readonly DoorbellDescription[]).map((d, i) => checkDoorbell(d, i, bars, msix));
  const names = new Map<string, number>();
  checked.forEach((d, i) => {
    const other = names.get(d.name);
    if (other !== undefined) {
      throw new DeviceDescriptionError(`doorbells[${i}].name`, `'${d.name}' is also the name of doorbells[${other}]`);
    }
    names.set(d.name, i);
    for (const earlier of checked.slice(0, i)) {
      const samePlace = earlier.bar === d.bar && earlier.offset === d.offset && earlier.size === d.size;
      if (samePlace && (earlier.datamatch === undefined || d.datamatch === undefined || earlier.datamatch === d.datamatch)) {
        throw new DeviceDescriptionError(
          `doorbells[${i}]`,
          `is at BAR ${d.bar} ${hex(d.offset)} (${d.size} bytes) as doorbells[${earlier.index}] is, and no datamatch tells them apart`,
        );
      }
    }
  });
  return checked;
}
