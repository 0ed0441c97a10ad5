/**
 * Checks of a description's fields, each naming the field that is wrong:
 * the generic ones (integers, booleans, objects, unknown fields) and those
 * of the BARs, config registers and migration.
 *
 * @packageDocumentation
 */
import { isPowerOfTwo } from './capabilities';
import { RegionFlag, STD_HEADER_SIZE } from './constants';
import type { BarAccessRules, BarDescription, BarRange, ConfigRegistersDescription, RegionHandlerSource } from './description';
import type { PlannedAccessRules, PlannedBar } from './device-plan';
import { DeviceDescriptionError, MigrationStreamError } from './errors';
import { describeValue } from './handler-results';
import type { DeviceMigration } from './migration';
import { os } from './native';

/** Migration for a device whose whole state is in the library's keeping. */
const LIBRARY_STATE_ONLY: DeviceMigration = {
  save: () => undefined,
  load: (state: Buffer): void => {
    if (state.length > 0) {
      throw new MigrationStreamError(`this device keeps no state of its own, the stream has ${state.length} bytes of it`);
    }
  },
};

export function checkMigration(value: true | DeviceMigration | undefined): DeviceMigration | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (value === true) {
    return LIBRARY_STATE_ONLY;
  }
  if (value === null || typeof value !== 'object') {
    throw new DeviceDescriptionError('migration', 'must be true or an object with save and load');
  }
  checkFields('migration', value, MIGRATION_FIELDS);
  for (const name of ['save', 'load', 'loadChunk', 'preCopy', 'loadPreCopy'] as const) {
    if (value[name] !== undefined && typeof value[name] !== 'function') {
      throw new DeviceDescriptionError(`migration.${name}`, 'must be a function');
    }
  }
  if (value.save === undefined) {
    throw new DeviceDescriptionError('migration.save', 'is required');
  }
  if ((value.load === undefined) === (value.loadChunk === undefined)) {
    throw new DeviceDescriptionError('migration', 'needs exactly one of load and loadChunk');
  }
  if ((value.preCopy === undefined) !== (value.loadPreCopy === undefined)) {
    throw new DeviceDescriptionError('migration', 'preCopy and loadPreCopy go together');
  }
  if (value.version !== undefined) {
    checkInteger('migration.version', value.version, 0, 0xffffffff);
  }
  return value;
}

const MIN_MEMORY_BAR = 16;
const MIN_IO_BAR = 4;
const MAX_IO_BAR = 256;
const MAX_BAR_32 = 2 ** 31;
const MAX_BAR_64 = 2 ** 52;

export function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new DeviceDescriptionError(
      field,
      `must be an integer from 0x${min.toString(16)} to 0x${max.toString(16)}, not ${String(value)}`,
    );
  }
  return value;
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Refuses fields the description does not know: a misspelt `msiX` would otherwise be ignored. */
export function checkFields(field: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new DeviceDescriptionError(field === '' ? key : `${field}.${key}`, `is not a field of ${field === '' ? 'a device description' : field} (it has ${known.join(', ')})`);
    }
  }
}

export function checkBoolean(field: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new DeviceDescriptionError(field, `must be true or false, not ${describeValue(value)}`);
  }
}

export function checkObject(field: string, value: unknown): asserts value is object {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DeviceDescriptionError(field, 'must be an object');
  }
}


const MIGRATION_FIELDS = ['version', 'save', 'load', 'loadChunk', 'preCopy', 'loadPreCopy'] as const;
const BAR_FIELDS = ['index', 'size', 'memory', 'bits64', 'prefetchable', 'handler', 'access', 'mapped'] as const;
const RANGE_FIELDS = ['offset', 'size'] as const;
const ACCESS_FIELDS = ['sizes', 'aligned'] as const;
const ACCESS_SIZES = [1, 2, 4, 8];
const CONFIG_REGISTER_FIELDS = ['offset', 'size', 'handler'] as const;
/** Regions after the six BARs, which a description cannot define. */
const NOT_BARS: Readonly<Record<number, string>> = { 6: 'the expansion ROM', 7: 'config space', 8: 'VGA' };

function checkBar(bar: BarDescription, i: number): PlannedBar {
  const field = `bars[${i}]`;
  checkObject(field, bar);
  checkFields(field, bar, BAR_FIELDS);
  if (typeof bar.index === 'number' && NOT_BARS[bar.index] !== undefined) {
    throw new DeviceDescriptionError(`${field}.index`, `region ${bar.index} is ${NOT_BARS[bar.index]}, not a BAR: BARs are 0 to 5`);
  }
  const index = checkInteger(`${field}.index`, bar.index, 0, 5);
  checkBoolean(`${field}.memory`, bar.memory);
  checkBoolean(`${field}.bits64`, bar.bits64);
  checkBoolean(`${field}.prefetchable`, bar.prefetchable);
  const memory = bar.memory ?? true;
  const bits64 = bar.bits64 ?? false;
  const prefetchable = bar.prefetchable ?? false;
  if (!memory && (bits64 || prefetchable)) {
    throw new DeviceDescriptionError(field, 'an I/O BAR cannot be 64-bit or prefetchable');
  }
  if (bits64 && index === 5) {
    throw new DeviceDescriptionError(`${field}.bits64`, 'a 64-bit BAR at index 5 has no BAR 6 for its upper half');
  }
  if (bits64 && index % 2 === 1) {
    throw new DeviceDescriptionError(`${field}.bits64`, `a 64-bit BAR needs an even index (0, 2 or 4), not ${index}`);
  }
  const { size } = bar;
  if (!isPowerOfTwo(size)) {
    throw new DeviceDescriptionError(`${field}.size`, `must be a power of two (at most 2^52), not ${String(size)}`);
  }
  if (memory) {
    const max = bits64 ? MAX_BAR_64 : MAX_BAR_32;
    if (size < MIN_MEMORY_BAR || size > max) {
      throw new DeviceDescriptionError(
        `${field}.size`,
        `a ${bits64 ? '64' : '32'}-bit memory BAR is ${MIN_MEMORY_BAR} bytes to 2^${Math.log2(max)} bytes, not ${size}`,
      );
    }
  } else if (size < MIN_IO_BAR || size > MAX_IO_BAR) {
    throw new DeviceDescriptionError(`${field}.size`, `an I/O BAR is ${MIN_IO_BAR} to ${MAX_IO_BAR} bytes, not ${size}`);
  }
  const { handler } = bar;
  if (
    handler !== undefined &&
    typeof handler !== 'function' &&
    (handler === null || typeof handler !== 'object' || typeof handler.read !== 'function' || typeof handler.write !== 'function')
  ) {
    throw new DeviceDescriptionError(`${field}.handler`, 'must have read and write methods, or be a function returning such an object');
  }
  const flags =
    RegionFlag.READ | RegionFlag.WRITE | (memory ? RegionFlag.MEM : 0) |
    (bits64 ? RegionFlag.BITS_64 : 0) | (prefetchable ? RegionFlag.PREFETCH : 0);
  const mapped = checkMappedRanges(`${field}.mapped`, bar.mapped, memory, size);
  return { index, size, flags, handler, access: checkAccessRules(`${field}.access`, bar.access), mapped };
}

/** Checks a BAR's mapped ranges: page-aligned, inside the BAR, apart; in offset order. */
function checkMappedRanges(field: string, mapped: true | readonly BarRange[] | undefined, memory: boolean, barSize: number): BarRange[] | undefined {
  if (mapped === undefined) {
    return undefined;
  }
  if (!memory) {
    throw new DeviceDescriptionError(field, 'an I/O BAR cannot be mapped: only memory BARs can be backed by shared memory');
  }
  const page = os.pageSize;
  if (mapped === true) {
    if (barSize < page) {
      throw new DeviceDescriptionError(field, `a mapped BAR is at least a page (${page} bytes), not ${barSize}`);
    }
    return [{ offset: 0, size: barSize }];
  }
  if (!Array.isArray(mapped) || mapped.length === 0) {
    throw new DeviceDescriptionError(field, 'must be true or a non-empty array of { offset, size } ranges');
  }
  const ranges = (mapped as readonly BarRange[]).map((range, i) => {
    const at = `${field}[${i}]`;
    checkObject(at, range);
    checkFields(at, range, RANGE_FIELDS);
    const offset = checkInteger(`${at}.offset`, range.offset, 0, barSize - 1);
    const size = checkInteger(`${at}.size`, range.size, 1, barSize - offset);
    if (offset % page !== 0 || size % page !== 0) {
      throw new DeviceDescriptionError(at, `offset and size must be multiples of the page size (${hex(page)}), not ${hex(offset)} and ${hex(size)}`);
    }
    return { offset, size };
  });
  ranges.sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].offset < ranges[i - 1].offset + ranges[i - 1].size) {
      throw new DeviceDescriptionError(field, `the ranges at ${hex(ranges[i - 1].offset)} and ${hex(ranges[i].offset)} overlap`);
    }
  }
  return ranges;
}

function checkAccessRules(field: string, access: BarAccessRules | undefined): PlannedAccessRules | undefined {
  if (access === undefined) {
    return undefined;
  }
  checkObject(field, access);
  checkFields(field, access, ACCESS_FIELDS);
  checkBoolean(`${field}.aligned`, access.aligned);
  let sizeMask: number | undefined;
  const sizes: unknown = access.sizes;
  if (sizes !== undefined) {
    if (!Array.isArray(sizes) || sizes.length === 0) {
      throw new DeviceDescriptionError(`${field}.sizes`, 'must be a non-empty array of sizes from 1, 2, 4 and 8');
    }
    sizeMask = 0;
    for (const size of sizes as unknown[]) {
      if (typeof size !== 'number' || !ACCESS_SIZES.includes(size)) {
        throw new DeviceDescriptionError(`${field}.sizes`, `an access is 1, 2, 4 or 8 bytes, not ${String(size)}`);
      }
      sizeMask |= 1 << size;
    }
  }
  return { sizeMask, aligned: access.aligned ?? false };
}

/** Checks a handler of config-space bytes: an object with read and write, or a function returning one. */
export function checkHandlerSource(field: string, handler: RegionHandlerSource): void {
  if (
    typeof handler !== 'function' &&
    (handler === null || typeof handler !== 'object' || typeof handler.read !== 'function' || typeof handler.write !== 'function')
  ) {
    throw new DeviceDescriptionError(field, 'must have read and write methods, or be a function returning such an object');
  }
}

/** Checks the config register ranges: inside config space after the header, dword-aligned, apart. */
export function checkConfigRegisters(ranges: readonly ConfigRegistersDescription[] | undefined, configSize: number): ConfigRegistersDescription[] {
  if (ranges === undefined) {
    return [];
  }
  if (!Array.isArray(ranges)) {
    throw new DeviceDescriptionError('configRegisters', 'must be an array');
  }
  const checked = ranges.map((range: ConfigRegistersDescription, i) => {
    const field = `configRegisters[${i}]`;
    checkObject(field, range);
    checkFields(field, range, CONFIG_REGISTER_FIELDS);
    const offset = checkInteger(`${field}.offset`, range.offset, STD_HEADER_SIZE, configSize - 4);
    const size = checkInteger(`${field}.size`, range.size, 4, configSize - offset);
    if (offset % 4 !== 0 || size % 4 !== 0) {
      throw new DeviceDescriptionError(field, `offset and size must be multiples of 4, not ${hex(offset)} and ${size}`);
    }
    const { handler } = range;
    checkHandlerSource(`${field}.handler`, handler);
    return { offset, size, handler };
  });
  checked.sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < checked.length; i++) {
    if (checked[i].offset < checked[i - 1].offset + checked[i - 1].size) {
      throw new DeviceDescriptionError('configRegisters', `the ranges at ${hex(checked[i - 1].offset)} and ${hex(checked[i].offset)} overlap`);
    }
  }
  return checked;
}

/** Checks the BARs: indices, sizes, and 64-bit upper halves that collide with other BARs. */
export function checkBars(bars: readonly BarDescription[] | undefined): PlannedBar[] {
  if (bars === undefined) {
    return [];
  }
  if (!Array.isArray(bars)) {
    throw new DeviceDescriptionError('bars', 'must be an array');
  }
  const planned = bars.map(checkBar);
  const owner = new Map<number, number>();
  planned.forEach((bar, i) => {
    const taken = (bar.flags & RegionFlag.BITS_64) !== 0 ? [bar.index, bar.index + 1] : [bar.index];
    for (const slot of taken) {
      const other = owner.get(slot);
      if (other !== undefined) {
        const twice = slot === bar.index && planned[other].index === slot;
        throw new DeviceDescriptionError(
          `bars[${i}].index`,
          twice
            ? `BAR ${slot} is described twice (bars[${other}] and bars[${i}])`
            : `BAR ${slot} is both a BAR of its own and the upper half of a 64-bit BAR (bars[${other}] and bars[${i}])`,
        );
      }
      owner.set(slot, i);
    }
  });
  return planned.sort((a, b) => a.index - b.index);
}
