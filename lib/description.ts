/**
 * The description of a PCI device (what `lspci -vv` would show) and its
 * validation into the plan the server sets up the C library with.
 *
 * @packageDocumentation
 */
import {
  dsnCapability,
  extendedVendorCapability,
  isPowerOfTwo,
  msiCapability,
  msixCapability,
  msixPbaSize,
  msixTableSize,
  pcieCapability,
  pmCapability,
  vendorCapability,
  type ExtendedVendorOptions,
  type MsiOptions,
  type MsixLayout,
  type PcieOptions,
  type PmOptions,
} from './capabilities';
import {
  CONFIG_SPACE_EXP_SIZE,
  CONFIG_SPACE_SIZE,
  CapabilityFlag,
  Msix,
  PciType,
  RegionFlag,
  STD_HEADER_SIZE,
} from './constants';
import { DeviceDescriptionError, MigrationStreamError } from './errors';
import { describeValue } from './handler-results';
import type { DeviceMigration } from './migration';
import type { RegionHandler } from './region';
import { RegisterMap } from './register-map';

/** A region handler, or a function returning one (called once, when the device is served). */
export type RegionHandlerSource = RegionHandler | (() => RegionHandler);

/** One base address register. */
export interface BarDescription {
  /** BAR number, 0 to 5. A 64-bit BAR also takes the next number. */
  readonly index: number;
  /** Size in bytes: a power of two, at least 16 for memory and from 4 to 256 for I/O. */
  readonly size: number;
  /** Memory space (true, the default) or I/O space (false). */
  readonly memory?: boolean;
  /** A 64-bit memory BAR (default false); needs an even index, 0, 2 or 4. */
  readonly bits64?: boolean;
  /** Prefetchable memory (default false). */
  readonly prefetchable?: boolean;
  /**
   * Answers the client's accesses. Without one, reads return zeros and
   * writes are dropped (e.g. a BAR holding only the MSI-X table).
   */
  readonly handler?: RegionHandlerSource;
}

/** The MSI-X capability and where its table and pending bit array (PBA) live. */
export interface MsixDescription {
  /** Table entries, 1 to 2048. */
  readonly vectors: number;
  /**
   * BAR holding the table. If `bars` does not describe it, a memory BAR of
   * its own is added: 4 KiB or more, table at 0, PBA after it.
   */
  readonly bar: number;
  /** Offset of the table in its BAR; required when `bar` is one of `bars`. */
  readonly tableOffset?: number;
  /** BAR holding the PBA (default: the table's BAR). */
  readonly pbaBar?: number;
  /** Offset of the PBA (default: right after the table, when in the same BAR). */
  readonly pbaOffset?: number;
}

/** The PCI type, which also sets the config space size. */
export type PciKind = 'conventional' | 'pci-x' | 'pci-x-2' | 'express';

/** Everything about a device that does not change while it runs. */
export interface DeviceDescription {
  /** Vendor ID, 16 bits (0xffff is not a valid vendor). */
  readonly vendorId: number;
  /** Device ID, 16 bits. */
  readonly deviceId: number;
  /** Subsystem vendor ID, 16 bits (default 0). */
  readonly subsystemVendorId?: number;
  /** Subsystem ID, 16 bits (default 0). */
  readonly subsystemId?: number;
  /** Class code, 24 bits: base class, sub-class, programming interface (default 0xff0000, "unassigned"). */
  readonly classCode?: number;
  /** Revision ID, 8 bits (default 0). */
  readonly revision?: number;
  /** Default: `'express'` with `pcie`, `'conventional'` otherwise. */
  readonly pciType?: PciKind;
  /** The BARs. */
  readonly bars?: readonly BarDescription[];
  /** The device raises INTA# (default false). */
  readonly intx?: boolean;
  /** The MSI capability. */
  readonly msi?: MsiOptions;
  /** The MSI-X capability. */
  readonly msix?: MsixDescription;
  /** The power management capability. */
  readonly pm?: true | PmOptions;
  /** The PCI Express capability (makes config space 4 KiB). */
  readonly pcie?: true | PcieOptions;
  /** Vendor-specific capabilities: the data after each one's 3 header bytes. */
  readonly vendorCapabilities?: readonly Uint8Array[];
  /** Vendor-specific extended capabilities (PCI Express and PCI-X 2 only). */
  readonly extendedVendorCapabilities?: readonly ExtendedVendorOptions[];
  /** A device serial number extended capability (PCI Express and PCI-X 2 only). */
  readonly serialNumber?: bigint;
  /** Accept DMA mappings from the client (default true), at most `maxMappings` (default 1024). */
  readonly dma?: boolean | { readonly maxMappings?: number };
  /**
   * The device can be migrated: `true` when the library's share of its
   * state (register maps and memory regions of its BARs, MSI-X table and
   * PBA) is all of it, or how it saves and loads its own. Without it the
   * device offers no migration.
   */
  readonly migration?: true | DeviceMigration;
}

/** A BAR as the server sets it up. */
export interface PlannedBar {
  /** BAR number. */
  readonly index: number;
  /** Size in bytes. */
  readonly size: number;
  /** `vfu_setup_region` flags. */
  readonly flags: number;
  /** Where its handler comes from, if any. */
  readonly handler?: RegionHandlerSource;
}

/** A capability as the server adds it. */
export interface PlannedCapability {
  /** Which capability: `'pm'`, `'msi'`, `'msix'`, `'pcie'`, `'vendor'`, `'dsn'` or `'extended-vendor'`. */
  readonly kind: CapabilityKind;
  /** `vfu_pci_add_capability` flags. */
  readonly flags: number;
  /** Its bytes. */
  readonly bytes: Uint8Array;
}

/** The capabilities a description can ask for. */
export type CapabilityKind = 'pm' | 'msi' | 'msix' | 'pcie' | 'vendor' | 'dsn' | 'extended-vendor';

/** A validated description, in the terms of the C library. */
export interface DevicePlan {
  /** `vfu_pci_type_t`. */
  readonly pciType: number;
  /** Config space size in bytes. */
  readonly configSize: number;
  /** Vendor ID. */
  readonly vendorId: number;
  /** Device ID. */
  readonly deviceId: number;
  /** Subsystem vendor ID. */
  readonly subsystemVendorId: number;
  /** Subsystem ID. */
  readonly subsystemId: number;
  /** Base class, sub-class, programming interface. */
  readonly classCode: readonly [number, number, number];
  /** Revision ID. */
  readonly revision: number;
  /** BARs in index order, the MSI-X BAR the plan added included. */
  readonly bars: readonly PlannedBar[];
  /** Capabilities in the order they are added. */
  readonly capabilities: readonly PlannedCapability[];
  /** Vector counts per interrupt type. */
  readonly irqs: { readonly intx: number; readonly msi: number; readonly msix: number };
  /** Where the MSI-X table and PBA are. */
  readonly msix?: MsixLayout;
  /** Most DMA mappings; 0 when DMA is off. */
  readonly dmaMaxMappings: number;
  /** How the device migrates, when it does. */
  readonly migration?: DeviceMigration;
}

/** Migration for a device whose whole state is in the library's keeping. */
const LIBRARY_STATE_ONLY: DeviceMigration = {
  save: () => undefined,
  load: (state: Buffer): void => {
    if (state.length > 0) {
      throw new MigrationStreamError(`this device keeps no state of its own, the stream has ${state.length} bytes of it`);
    }
  },
};

function checkMigration(value: true | DeviceMigration | undefined): DeviceMigration | undefined {
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

const PCI_KINDS: Readonly<Record<PciKind, number>> = {
  conventional: PciType.CONVENTIONAL,
  'pci-x': PciType.PCI_X_1,
  'pci-x-2': PciType.PCI_X_2,
  express: PciType.EXPRESS,
};

const MIN_MEMORY_BAR = 16;
const MIN_IO_BAR = 4;
const MAX_IO_BAR = 256;
const MAX_BAR_32 = 2 ** 31;
const MAX_BAR_64 = 2 ** 52;
const MSIX_BAR_MIN = 4096;
const DEFAULT_DMA_MAPPINGS = 1024;

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
}

function checkInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new DeviceDescriptionError(
      field,
      `must be an integer from 0x${min.toString(16)} to 0x${max.toString(16)}, not ${String(value)}`,
    );
  }
  return value;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Refuses fields the description does not know: a misspelt `msiX` would otherwise be ignored. */
function checkFields(field: string, value: object, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new DeviceDescriptionError(field === '' ? key : `${field}.${key}`, `is not a field of ${field === '' ? 'a device description' : field} (it has ${known.join(', ')})`);
    }
  }
}

function checkBoolean(field: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new DeviceDescriptionError(field, `must be true or false, not ${describeValue(value)}`);
  }
}

function checkObject(field: string, value: unknown): asserts value is object {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DeviceDescriptionError(field, 'must be an object');
  }
}

const DESCRIPTION_FIELDS = [
  'vendorId', 'deviceId', 'subsystemVendorId', 'subsystemId', 'classCode', 'revision', 'pciType',
  'bars', 'intx', 'msi', 'msix', 'pm', 'pcie', 'vendorCapabilities', 'extendedVendorCapabilities',
  'serialNumber', 'dma', 'migration',
] as const;
const MIGRATION_FIELDS = ['version', 'save', 'load', 'loadChunk', 'preCopy', 'loadPreCopy'] as const;
const BAR_FIELDS = ['index', 'size', 'memory', 'bits64', 'prefetchable', 'handler'] as const;
const MSIX_FIELDS = ['vectors', 'bar', 'tableOffset', 'pbaBar', 'pbaOffset'] as const;
const MSI_FIELDS = ['vectors', 'address64', 'perVectorMask'] as const;
const PM_FIELDS = ['version', 'd1', 'd2', 'pmeSupport', 'dsi', 'noSoftReset'] as const;
const PCIE_FIELDS = ['deviceType', 'flr', 'maxPayloadSize', 'linkSpeed', 'linkWidth'] as const;
const DMA_FIELDS = ['maxMappings'] as const;
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
  return { index, size, flags, handler };
}

/** Checks the BARs: indices, sizes, and 64-bit upper halves that collide with other BARs. */
function checkBars(bars: readonly BarDescription[] | undefined): PlannedBar[] {
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

function barOccupying(bars: readonly PlannedBar[], index: number): PlannedBar | undefined {
  return bars.find(
    (b) => b.index === index || ((b.flags & RegionFlag.BITS_64) !== 0 && b.index + 1 === index),
  );
}

/** Checks the MSI-X description, adding a BAR for the table when none is described. */
function planMsix(msix: MsixDescription, bars: PlannedBar[]): { layout: MsixLayout; capability: Uint8Array } {
  checkObject('msix', msix);
  checkFields('msix', msix, MSIX_FIELDS);
  const vectors = msix.vectors;
  if (typeof vectors !== 'number' || !Number.isInteger(vectors) || vectors < 1 || vectors > Msix.MAX_VECTORS) {
    throw new DeviceDescriptionError('msix.vectors', `must be an integer from 1 to ${Msix.MAX_VECTORS}, not ${String(vectors)}`);
  }
  const tableBar = checkInteger('msix.bar', msix.bar, 0, 5);
  const pbaBar = checkInteger('msix.pbaBar', msix.pbaBar ?? tableBar, 0, 5);
  const tableSize = msixTableSize(vectors);
  const pbaSize = msixPbaSize(vectors);
  const described = barOccupying(bars, tableBar);

  let tableOffset = msix.tableOffset;
  if (tableOffset === undefined) {
    if (described !== undefined) {
      throw new DeviceDescriptionError('msix.tableOffset', `required: the table shares BAR ${tableBar} with the device's registers`);
    }
    tableOffset = 0;
  }
  let pbaOffset = msix.pbaOffset;
  if (pbaOffset === undefined) {
    if (pbaBar !== tableBar) {
      throw new DeviceDescriptionError('msix.pbaOffset', 'required when the PBA is in another BAR than the table');
    }
    pbaOffset = tableOffset + tableSize;
  }
  const layout: MsixLayout = { vectors, tableBar, tableOffset, pbaBar, pbaOffset };
  const capability = msixCapability(layout); // also checks the offsets' alignment and range

  if (described === undefined) {
    const end = Math.max(tableOffset + tableSize, pbaBar === tableBar ? pbaOffset + pbaSize : 0);
    bars.push({
      index: tableBar,
      size: Math.max(MSIX_BAR_MIN, nextPowerOfTwo(end)),
      flags: RegionFlag.READ | RegionFlag.WRITE | RegionFlag.MEM,
    });
    bars.sort((a, b) => a.index - b.index);
  }
  const check = (what: string, field: string, barIndex: number, offset: number, size: number): void => {
    const bar = bars.find((b) => b.index === barIndex);
    if (bar === undefined) {
      throw new DeviceDescriptionError(field, `BAR ${barIndex} holding the MSI-X ${what} is not described (or is the upper half of a 64-bit BAR)`);
    }
    if ((bar.flags & RegionFlag.MEM) === 0) {
      throw new DeviceDescriptionError(field, `the MSI-X ${what} must be in a memory BAR; BAR ${barIndex} is I/O`);
    }
    if (offset + size > bar.size) {
      throw new DeviceDescriptionError(
        field,
        `the MSI-X ${what} (${hex(offset)}..${hex(offset + size)}) does not fit in BAR ${barIndex} (${hex(bar.size)} bytes)`,
      );
    }
  };
  check('table', 'msix.tableOffset', tableBar, tableOffset, tableSize);
  check('PBA', 'msix.pbaOffset', pbaBar, pbaOffset, pbaSize);
  if (pbaBar === tableBar && pbaOffset < tableOffset + tableSize && tableOffset < pbaOffset + pbaSize) {
    throw new DeviceDescriptionError('msix.pbaOffset', 'the MSI-X table and PBA overlap');
  }
  return { layout, capability };
}

/**
 * Checks a BAR's handler against the BAR: a register map's registers must
 * lie inside the BAR and clear of the MSI-X table and PBA, whose accesses
 * the library answers itself (a register there could never be reached).
 * Run by {@link planDevice} for handler objects, and by the server for
 * handlers a function returns.
 *
 * @throws {@link DeviceDescriptionError} naming the register
 */
export function checkHandlerLayout(bar: PlannedBar, handler: RegionHandler, msix: MsixLayout | undefined): void {
  if (!(handler instanceof RegisterMap)) {
    return;
  }
  const field = `bars (BAR ${bar.index}).handler`;
  const claimed: Array<[string, number, number]> = [];
  if (msix !== undefined && msix.tableBar === bar.index) {
    claimed.push(['MSI-X table', msix.tableOffset, msixTableSize(msix.vectors)]);
  }
  if (msix !== undefined && msix.pbaBar === bar.index) {
    claimed.push(['MSI-X PBA', msix.pbaOffset, msixPbaSize(msix.vectors)]);
  }
  for (const r of handler.layout) {
    if (r.offset + r.width > bar.size) {
      throw new DeviceDescriptionError(
        `${field}.registers.${r.name}`,
        `at ${hex(r.offset)} (${r.width} bytes) lies outside BAR ${bar.index} (${hex(bar.size)} bytes)`,
      );
    }
    for (const [what, offset, size] of claimed) {
      if (r.offset < offset + size && offset < r.offset + r.width) {
        throw new DeviceDescriptionError(
          `${field}.registers.${r.name}`,
          `at ${hex(r.offset)} overlaps the ${what} (${hex(offset)}..${hex(offset + size)}), which the library answers`,
        );
      }
    }
  }
}

/**
 * Validates a description and turns it into a {@link DevicePlan}.
 *
 * @throws {@link DeviceDescriptionError} naming the first field that is wrong
 */
export function planDevice(description: DeviceDescription): DevicePlan {
  if (description === null || typeof description !== 'object') {
    throw new DeviceDescriptionError('description', 'must be an object');
  }
  const d = description;
  checkFields('', d, DESCRIPTION_FIELDS);
  checkBoolean('intx', d.intx);
  const vendorId = checkInteger('vendorId', d.vendorId, 0, 0xfffe);
  const deviceId = checkInteger('deviceId', d.deviceId, 0, 0xffff);
  const subsystemVendorId = checkInteger('subsystemVendorId', d.subsystemVendorId ?? 0, 0, 0xffff);
  const subsystemId = checkInteger('subsystemId', d.subsystemId ?? 0, 0, 0xffff);
  const classCode = checkInteger('classCode', d.classCode ?? 0xff0000, 0, 0xffffff);
  const revision = checkInteger('revision', d.revision ?? 0, 0, 0xff);

  const kind: PciKind = d.pciType ?? (d.pcie !== undefined ? 'express' : 'conventional');
  if (!(kind in PCI_KINDS)) {
    throw new DeviceDescriptionError('pciType', `must be one of ${Object.keys(PCI_KINDS).join(', ')}, not ${String(kind)}`);
  }
  const pciType = PCI_KINDS[kind];
  const extendedConfig = pciType === PciType.EXPRESS || pciType === PciType.PCI_X_2;
  if (d.pcie !== undefined && pciType !== PciType.EXPRESS) {
    throw new DeviceDescriptionError('pcie', `a PCI Express capability needs pciType 'express', not '${kind}'`);
  }

  const bars = checkBars(d.bars);
  const capabilities: PlannedCapability[] = [];
  const add = (capKind: CapabilityKind, bytes: Uint8Array, extended = false): void => {
    capabilities.push({ kind: capKind, flags: extended ? CapabilityFlag.EXTENDED : 0, bytes });
  };
  if (d.pm !== undefined) {
    if (d.pm !== true) {
      checkObject('pm', d.pm);
      checkFields('pm', d.pm, PM_FIELDS);
      if (d.pm.noSoftReset === false) {
        // Linux would pick the PM reset method and find nothing reset.
        throw new DeviceDescriptionError('pm.noSoftReset', 'false is not supported: D3hot to D0 does not reset the device; give it FLR (pcie) or place it behind a root port');
      }
    }
    add('pm', pmCapability(d.pm === true ? {} : d.pm));
  }
  if (d.msi !== undefined) {
    checkObject('msi', d.msi);
    checkFields('msi', d.msi, MSI_FIELDS);
    checkBoolean('msi.address64', d.msi.address64);
    checkBoolean('msi.perVectorMask', d.msi.perVectorMask);
    add('msi', msiCapability(d.msi));
  }
  let msix: MsixLayout | undefined;
  if (d.msix !== undefined) {
    const planned = planMsix(d.msix, bars);
    msix = planned.layout;
    add('msix', planned.capability);
  }
  for (const bar of bars) {
    if (bar.handler !== undefined && typeof bar.handler !== 'function') {
      checkHandlerLayout(bar, bar.handler, msix);
    }
  }
  if (d.pcie !== undefined) {
    if (d.pcie !== true) {
      checkObject('pcie', d.pcie);
      checkFields('pcie', d.pcie, PCIE_FIELDS);
    }
    add('pcie', pcieCapability(d.pcie === true ? {} : d.pcie));
  }
  if (d.vendorCapabilities !== undefined) {
    if (!Array.isArray(d.vendorCapabilities)) {
      throw new DeviceDescriptionError('vendorCapabilities', 'must be an array of Uint8Array');
    }
    for (const data of d.vendorCapabilities as readonly Uint8Array[]) { // isArray() narrowed it to any[]
      add('vendor', vendorCapability(data));
    }
  }
  let standardBytes = 0;
  for (const cap of capabilities) {
    standardBytes += Math.ceil(cap.bytes.length / 4) * 4;
  }
  if (STD_HEADER_SIZE + standardBytes > CONFIG_SPACE_SIZE) {
    throw new DeviceDescriptionError(
      'capabilities',
      `need ${standardBytes} bytes, more than the ${CONFIG_SPACE_SIZE - STD_HEADER_SIZE} after the standard header`,
    );
  }

  const extended: Array<[string, Uint8Array]> = [];
  if (d.serialNumber !== undefined) {
    extended.push(['serialNumber', dsnCapability(d.serialNumber)]);
  }
  for (const options of d.extendedVendorCapabilities ?? []) {
    extended.push(['extendedVendorCapabilities', extendedVendorCapability(options)]);
  }
  if (extended.length > 0 && !extendedConfig) {
    throw new DeviceDescriptionError(extended[0][0], `extended capabilities need 4 KiB of config space: pciType 'express' or 'pci-x-2', not '${kind}'`);
  }
  let extendedBytes = 0;
  for (const [field, bytes] of extended) {
    extendedBytes += Math.ceil(bytes.length / 4) * 4;
    add(field === 'serialNumber' ? 'dsn' : 'extended-vendor', bytes, true);
  }
  if (extendedBytes > CONFIG_SPACE_EXP_SIZE - CONFIG_SPACE_SIZE) {
    throw new DeviceDescriptionError(
      'extendedVendorCapabilities',
      `extended capabilities need ${extendedBytes} bytes, more than the ${CONFIG_SPACE_EXP_SIZE - CONFIG_SPACE_SIZE} after the first 256`,
    );
  }

  let dmaMaxMappings = d.dma === false ? 0 : DEFAULT_DMA_MAPPINGS;
  if (d.dma !== undefined && typeof d.dma !== 'boolean') {
    checkObject('dma', d.dma);
    checkFields('dma', d.dma, DMA_FIELDS);
    if (d.dma.maxMappings !== undefined) {
      dmaMaxMappings = checkInteger('dma.maxMappings', d.dma.maxMappings, 1, 65535);
    }
  }

  return {
    pciType,
    configSize: extendedConfig ? CONFIG_SPACE_EXP_SIZE : CONFIG_SPACE_SIZE,
    vendorId,
    deviceId,
    subsystemVendorId,
    subsystemId,
    classCode: [classCode >>> 16, (classCode >>> 8) & 0xff, classCode & 0xff],
    revision,
    bars,
    capabilities,
    irqs: {
      intx: d.intx === true ? 1 : 0,
      msi: d.msi?.vectors ?? 0,
      msix: msix?.vectors ?? 0,
    },
    msix,
    dmaMaxMappings,
    migration: checkMigration(d.migration),
  };
}
