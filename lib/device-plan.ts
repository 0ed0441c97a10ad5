/**
 * A description validated into the plan the server sets the C library up
 * with: BARs, capabilities and where they go, interrupts, MSI-X layout,
 * expansion ROM, DMA and migration.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';

import {
  dsnCapability,
  extendedVendorCapability,
  msiCapability,
  msixCapability,
  msixPbaSize,
  msixTableSize,
  pcieCapability,
  pmCapability,
  vendorCapability,
  VENDOR_CAPABILITY_HEADER_SIZE,
  type MsixLayout,
} from './capabilities';
import { CONFIG_SPACE_EXP_SIZE, CONFIG_SPACE_SIZE, CapabilityFlag, Msix, PciType, RegionFlag, STD_HEADER_SIZE } from './constants';
import type {
  BarRange,
  CapabilityKind,
  ConfigRegistersDescription,
  DeviceDescription,
  LiveVendorCapabilityDescription,
  MsixDescription,
  PciKind,
  RegionHandlerSource,
} from './description';
import {
  checkBars,
  checkBoolean,
  checkConfigRegisters,
  checkFields,
  checkInteger,
  checkMigration,
  checkObject,
  hex,
} from './description-checks';
import { checkDoorbells, type Doorbell } from './doorbell-plan';
import { DeviceDescriptionError } from './errors';
import { checkLiveVendorCapability, liveVendorCapabilityBytes } from './live-vendor-capability';
import type { DeviceMigration } from './migration';
import type { RegionHandler } from './region';
import { RegisterMap } from './register-map';

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
  /** The accesses its handler takes, when limited. */
  readonly access?: PlannedAccessRules;
  /** The ranges in shared memory the client maps, in offset order. */
  readonly mapped?: readonly BarRange[];
}

/** A BAR's `access` rules as the server checks them. */
export interface PlannedAccessRules {
  /** Bit n set: n-byte accesses are taken; undefined: any size. */
  readonly sizeMask?: number;
  /** Only naturally aligned accesses. */
  readonly aligned: boolean;
}

/** A capability as the server adds it. */
export interface PlannedCapability {
  /** Which capability: `'pm'`, `'msi'`, `'msix'`, `'pcie'`, `'vendor'`, `'dsn'` or `'extended-vendor'`. */
  readonly kind: CapabilityKind;
  /** `vfu_pci_add_capability` flags. */
  readonly flags: number;
  /** Its bytes. */
  readonly bytes: Uint8Array;
  /** Where it goes; 0: where the library finds room. */
  readonly offset: number;
  /** A live vendor capability's handler: the library sends its accesses to the server. */
  readonly handler?: RegionHandlerSource;
}

/**
 * A config-space range the server answers: a device's config registers, or a
 * live vendor capability whose `header` first bytes are the library's.
 */
export interface PlannedConfigRange extends ConfigRegistersDescription {
  /** Leading bytes read as the library stores them, writes ignored. */
  readonly header: number;
}

/** The expansion ROM as the server sets it up. */
export interface PlannedRom {
  /** The ROM BAR's size: a power of two, at least 2 KiB. */
  readonly size: number;
  /** Its contents (a copy: the device cannot change them). */
  readonly bytes: Buffer;
}

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
  /** The expansion ROM, when the device has one. */
  readonly expansionRom?: PlannedRom;
  /** Config-space ranges the device answers (live vendor capabilities included), in offset order. */
  readonly configRegisters: readonly PlannedConfigRange[];
  /** Most DMA mappings; 0 when DMA is off. */
  readonly dmaMaxMappings: number;
  /** How the device migrates, when it does. */
  readonly migration?: DeviceMigration;
  /** The doorbells, in description order. */
  readonly doorbells: readonly Doorbell[];
}

const PCI_KINDS: Readonly<Record<PciKind, number>> = {
  conventional: PciType.CONVENTIONAL,
  'pci-x': PciType.PCI_X_1,
  'pci-x-2': PciType.PCI_X_2,
  express: PciType.EXPRESS,
};

const MSIX_BAR_MIN = 4096;
const DEFAULT_DMA_MAPPINGS = 1024;
/** The ROM BAR's address bits are 31:11: 2 KiB is the smallest ROM. */
const MIN_ROM = 2048;
const MAX_ROM = 2 ** 31;

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
}

const DESCRIPTION_FIELDS = [
  'vendorId', 'deviceId', 'subsystemVendorId', 'subsystemId', 'classCode', 'revision', 'pciType',
  'bars', 'intx', 'msi', 'msix', 'pm', 'pcie', 'vendorCapabilities', 'extendedVendorCapabilities',
  'serialNumber', 'configRegisters', 'expansionRom', 'dma', 'migration', 'doorbells',
] as const;
const MSIX_FIELDS = ['vectors', 'bar', 'tableOffset', 'pbaBar', 'pbaOffset'] as const;
const MSI_FIELDS = ['vectors', 'address64', 'perVectorMask'] as const;
const PM_FIELDS = ['version', 'd1', 'd2', 'pmeSupport', 'dsi', 'noSoftReset'] as const;
const PCIE_FIELDS = ['deviceType', 'flr', 'maxPayloadSize', 'linkSpeed', 'linkWidth'] as const;
const DMA_FIELDS = ['maxMappings'] as const;
/**
 * Places the capabilities clear of the config registers, each at the first
 * dword it fits from 0x40 (standard) or 0x100 (extended), as the library
 * would without them. Left to the library when there are no registers and
 * no live capability, whose offset the server must know.
 */
function placeCapabilities(capabilities: PlannedCapability[], ranges: readonly ConfigRegistersDescription[], configSize: number): PlannedCapability[] {
  if (ranges.length === 0 && capabilities.every((cap) => cap.handler === undefined)) {
    return capabilities;
  }
  const taken: Array<[number, number]> = ranges.map((r) => [r.offset, r.offset + r.size]);
  return capabilities.map((cap) => {
    const extended = (cap.flags & CapabilityFlag.EXTENDED) !== 0;
    const limit = extended ? configSize : CONFIG_SPACE_SIZE;
    const size = Math.ceil(cap.bytes.length / 4) * 4;
    let offset = extended ? CONFIG_SPACE_SIZE : STD_HEADER_SIZE;
    for (let moved = true; moved; ) {
      moved = false;
      for (const [start, end] of taken) {
        if (offset < end && start < offset + size) {
          offset = end;
          moved = true;
        }
      }
    }
    if (offset + size > limit) {
      throw new DeviceDescriptionError('configRegisters', `leave no room for the ${cap.kind} capability (${size} bytes)`);
    }
    taken.push([offset, offset + size]);
    return { ...cap, offset };
  });
}

/** The device's config registers and its live vendor capabilities, as ranges in offset order. */
function configRanges(registers: readonly ConfigRegistersDescription[], capabilities: readonly PlannedCapability[]): PlannedConfigRange[] {
  const ranges: PlannedConfigRange[] = registers.map((range) => ({ ...range, header: 0 }));
  for (const cap of capabilities) {
    if (cap.handler !== undefined) {
      ranges.push({ offset: cap.offset, size: cap.bytes.length, handler: cap.handler, header: VENDOR_CAPABILITY_HEADER_SIZE });
    }
  }
  return ranges.sort((a, b) => a.offset - b.offset);
}

/** Reads and sizes the expansion ROM. */
function planRom(rom: Uint8Array | string | undefined): PlannedRom | undefined {
  if (rom === undefined) {
    return undefined;
  }
  let bytes: Buffer;
  if (typeof rom === 'string') {
    try {
      bytes = readFileSync(rom);
    } catch (err) {
      const { code } = err as { code?: unknown };
      throw new DeviceDescriptionError('expansionRom', `cannot read ${rom}: ${typeof code === 'string' ? code : String(err)}`);
    }
  } else if (rom instanceof Uint8Array) {
    bytes = Buffer.from(rom);
  } else {
    throw new DeviceDescriptionError('expansionRom', 'must be a Uint8Array or a file path');
  }
  if (bytes.length === 0 || bytes.length > MAX_ROM) {
    throw new DeviceDescriptionError('expansionRom', `must hold 1 byte to 2 GiB, not ${bytes.length}`);
  }
  return { size: Math.max(MIN_ROM, nextPowerOfTwo(bytes.length)), bytes };
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
  checkClearOfMapped('table', 'msix.tableOffset', bars, tableBar, tableOffset, tableSize);
  checkClearOfMapped('PBA', 'msix.pbaOffset', bars, pbaBar, pbaOffset, pbaSize);
  if (pbaBar === tableBar && pbaOffset < tableOffset + tableSize && tableOffset < pbaOffset + pbaSize) {
    throw new DeviceDescriptionError('msix.pbaOffset', 'the MSI-X table and PBA overlap');
  }
  return { layout, capability };
}

/** The MSI-X table and PBA are the library's: a client mapping them would bypass it. */
function checkClearOfMapped(what: string, field: string, bars: readonly PlannedBar[], barIndex: number, offset: number, size: number): void {
  for (const range of bars.find((b) => b.index === barIndex)?.mapped ?? []) {
    if (offset < range.offset + range.size && range.offset < offset + size) {
      throw new DeviceDescriptionError(
        field,
        `the MSI-X ${what} (${hex(offset)}..${hex(offset + size)}) lies in BAR ${barIndex}'s mapped range ${hex(range.offset)}..${hex(range.offset + range.size)}, which the library cannot trap`,
      );
    }
  }
}

/**
 * Checks a BAR's handler against the BAR: a register map's registers must
 * lie inside the BAR and clear of the MSI-X table and PBA, whose accesses
 * the library answers itself, and of mapped ranges, which a mapping client
 * reaches in memory (a register there could never be reached).
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
  for (const range of bar.mapped ?? []) {
    claimed.push(['mapped range', range.offset, range.size]);
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
          `at ${hex(r.offset)} overlaps the ${what} (${hex(offset)}..${hex(offset + size)}), ${what === 'mapped range' ? 'which a mapping client reaches without the handler' : 'which the library answers'}`,
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
    capabilities.push({ kind: capKind, flags: extended ? CapabilityFlag.EXTENDED : 0, bytes, offset: 0 });
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
  const doorbells = checkDoorbells(d.doorbells, bars, msix);
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
      throw new DeviceDescriptionError('vendorCapabilities', 'must be an array of Uint8Array or { length, handler }');
    }
    // isArray() narrowed it to any[].
    (d.vendorCapabilities as readonly (Uint8Array | LiveVendorCapabilityDescription)[]).forEach((entry, i) => {
      if (entry instanceof Uint8Array) {
        add('vendor', vendorCapability(entry));
        return;
      }
      const live = checkLiveVendorCapability(`vendorCapabilities[${i}]`, entry);
      const bytes = liveVendorCapabilityBytes(live.length);
      capabilities.push({ kind: 'vendor', flags: CapabilityFlag.CALLBACK, bytes, offset: 0, handler: live.handler });
    });
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

  const configSize = extendedConfig ? CONFIG_SPACE_EXP_SIZE : CONFIG_SPACE_SIZE;
  const configRegisters = checkConfigRegisters(d.configRegisters, configSize);
  const placed = placeCapabilities(capabilities, configRegisters, configSize);
  return {
    pciType,
    configSize,
    vendorId,
    deviceId,
    subsystemVendorId,
    subsystemId,
    classCode: [classCode >>> 16, (classCode >>> 8) & 0xff, classCode & 0xff],
    revision,
    bars,
    capabilities: placed,
    irqs: {
      intx: d.intx === true ? 1 : 0,
      msi: d.msi?.vectors ?? 0,
      msix: msix?.vectors ?? 0,
    },
    msix,
    expansionRom: planRom(d.expansionRom),
    configRegisters: configRanges(configRegisters, placed),
    dmaMaxMappings,
    migration: checkMigration(d.migration),
    doorbells,
  };
}
