/**
 * Builders of PCI capability structures, byte for byte as the PCI, PCI PM and
 * PCI Express specifications lay them out (the offsets `<linux/pci_regs.h>`
 * names). The "next" pointer is left 0: the library links the list.
 *
 * @packageDocumentation
 */
import {
  CapabilityId,
  ExtendedCapabilityId,
  Msi,
  Msix,
  PciExpress,
  PowerManagement,
} from './constants';
import { DeviceDescriptionError } from './errors';

/** Options of the power management capability. */
export interface PmOptions {
  /** PM specification version: 3 is PCI PM 1.2 (the default). */
  readonly version?: 1 | 2 | 3;
  /** The D1 state is supported. */
  readonly d1?: boolean;
  /** The D2 state is supported. */
  readonly d2?: boolean;
  /** States that can assert PME#: bit 0 D0, 1 D1, 2 D2, 3 D3hot, 4 D3cold (default 0). */
  readonly pmeSupport?: number;
  /** Device-specific initialisation is needed after D0 (default false). */
  readonly dsi?: boolean;
  /**
   * Going from D3hot to D0 does not reset the device (default true; a
   * device description refuses false, as the library does not perform that reset).
   */
  readonly noSoftReset?: boolean;
}

/** Options of the MSI capability. */
export interface MsiOptions {
  /** Vectors the function can use. */
  readonly vectors: 1 | 2 | 4 | 8 | 16 | 32;
  /** The function can send 64-bit message addresses (default true). */
  readonly address64?: boolean;
  /** Each vector has mask and pending bits (default true). */
  readonly perVectorMask?: boolean;
}

/** Where the MSI-X table and PBA are, and how many vectors the table has. */
export interface MsixLayout {
  /** Table entries, 1 to 2048. */
  readonly vectors: number;
  /** BAR that holds the table. */
  readonly tableBar: number;
  /** Offset of the table in its BAR, a multiple of 8. */
  readonly tableOffset: number;
  /** BAR that holds the pending bit array. */
  readonly pbaBar: number;
  /** Offset of the PBA in its BAR, a multiple of 8. */
  readonly pbaOffset: number;
}

/** Options of the PCI Express capability. */
export interface PcieOptions {
  /** Device/port type: 0 endpoint (default), 1 legacy endpoint, 9 root complex integrated endpoint. */
  readonly deviceType?: 0 | 1 | 9;
  /** Function-level reset is supported (default true). */
  readonly flr?: boolean;
  /** Largest payload the function supports, in bytes (default 128). */
  readonly maxPayloadSize?: 128 | 256 | 512 | 1024 | 2048 | 4096;
  /** Link speed, 1 = 2.5 GT/s … 5 = 32 GT/s (default 1); endpoints only. */
  readonly linkSpeed?: 1 | 2 | 3 | 4 | 5;
  /** Link width in lanes (default 1); endpoints only. */
  readonly linkWidth?: 1 | 2 | 4 | 8 | 12 | 16 | 32;
}

/** Options of the vendor-specific extended capability (VSEC). */
export interface ExtendedVendorOptions {
  /** Vendor-defined VSEC ID, 16 bits. */
  readonly vsecId: number;
  /** Vendor-defined revision, 4 bits (default 0). */
  readonly revision?: number;
  /** The capability's data after its 8 header bytes. */
  readonly data: Uint8Array;
}

/** Bytes in the PM capability. */
export const PM_CAPABILITY_SIZE = 8;
/** Bytes the library reserves for an MSI capability, whatever its layout. */
export const MSI_CAPABILITY_SIZE = 24;
/** Bytes in the MSI-X capability. */
export const MSIX_CAPABILITY_SIZE = 12;
/** Bytes in the PCI Express capability (version 2). */
export const PCIE_CAPABILITY_SIZE = PciExpress.SIZEOF;
/** Bytes in a vendor-specific capability's header: ID, next, length. */
export const VENDOR_CAPABILITY_HEADER_SIZE = 3;
/** Bytes in the device serial number extended capability. */
export const DSN_CAPABILITY_SIZE = 12;
/** Bytes in a vendor-specific extended capability's header. */
export const EXTENDED_VENDOR_HEADER_SIZE = 8;

function checkInteger(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new DeviceDescriptionError(field, `must be an integer from ${min} to ${max}, not ${String(value)}`);
  }
}

/** Whether `n` is a positive power of two (a safe integer). */
export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** The 8-byte power management capability: D0 state, PME disabled. */
export function pmCapability(options: PmOptions = {}): Uint8Array {
  const version = options.version ?? 3;
  checkInteger('pm.version', version, 1, 3);
  const pmeSupport = options.pmeSupport ?? 0;
  checkInteger('pm.pmeSupport', pmeSupport, 0, 0x1f);
  const bytes = Buffer.alloc(PM_CAPABILITY_SIZE);
  bytes[0] = CapabilityId.PM;
  const pmc =
    version | (options.dsi === true ? 1 << 5 : 0) | (options.d1 === true ? 1 << 9 : 0) |
    (options.d2 === true ? 1 << 10 : 0) | (pmeSupport << 11);
  bytes.writeUInt16LE(pmc, PowerManagement.PMC);
  bytes.writeUInt16LE(options.noSoftReset === false ? 0 : PowerManagement.CTRL_NO_SOFT_RESET, PowerManagement.CTRL);
  return new Uint8Array(bytes);
}

/**
 * The MSI capability, disabled, in the 24 bytes the library reserves for it;
 * its registers sit where the PCI specification puts them for the layout the
 * options choose (32/64-bit address, with or without per-vector masking).
 */
export function msiCapability(options: MsiOptions): Uint8Array {
  if (![1, 2, 4, 8, 16, 32].includes(options.vectors)) {
    throw new DeviceDescriptionError('msi.vectors', `must be 1, 2, 4, 8, 16 or 32, not ${String(options.vectors)}`);
  }
  const bytes = Buffer.alloc(MSI_CAPABILITY_SIZE);
  bytes[0] = CapabilityId.MSI;
  const flags =
    (Math.log2(options.vectors) << 1) |
    (options.address64 === false ? 0 : Msi.FLAGS_64BIT) |
    (options.perVectorMask === false ? 0 : Msi.FLAGS_MASKBIT);
  bytes.writeUInt16LE(flags, Msi.FLAGS);
  return new Uint8Array(bytes);
}

/** Bytes of the MSI-X table for `vectors` entries. */
export function msixTableSize(vectors: number): number {
  return vectors * Msix.ENTRY_SIZE;
}

/** Bytes of the pending bit array for `vectors` entries: whole qwords. */
export function msixPbaSize(vectors: number): number {
  return Math.ceil(vectors / 64) * 8;
}

/** The 12-byte MSI-X capability, disabled and not function-masked. */
export function msixCapability(layout: MsixLayout): Uint8Array {
  checkInteger('msix.vectors', layout.vectors, 1, Msix.MAX_VECTORS);
  checkInteger('msix.bar', layout.tableBar, 0, 5);
  checkInteger('msix.pbaBar', layout.pbaBar, 0, 5);
  for (const [field, offset] of [['msix.tableOffset', layout.tableOffset], ['msix.pbaOffset', layout.pbaOffset]] as const) {
    if (!Number.isInteger(offset) || offset < 0 || offset > 0xfffffff8 || offset % 8 !== 0) {
      throw new DeviceDescriptionError(field, `must be a multiple of 8 below 2^32, not ${String(offset)}`);
    }
  }
  const bytes = Buffer.alloc(MSIX_CAPABILITY_SIZE);
  bytes[0] = CapabilityId.MSIX;
  bytes.writeUInt16LE(layout.vectors - 1, Msix.FLAGS);
  bytes.writeUInt32LE((layout.tableOffset | layout.tableBar) >>> 0, Msix.TABLE);
  bytes.writeUInt32LE((layout.pbaOffset | layout.pbaBar) >>> 0, Msix.PBA);
  return new Uint8Array(bytes);
}

/** The 60-byte PCI Express capability (version 2) of an endpoint. */
export function pcieCapability(options: PcieOptions = {}): Uint8Array {
  const deviceType = options.deviceType ?? 0;
  if (deviceType !== 0 && deviceType !== 1 && deviceType !== 9) {
    throw new DeviceDescriptionError('pcie.deviceType', `must be 0, 1 or 9, not ${String(deviceType)}`);
  }
  const maxPayload = options.maxPayloadSize ?? 128;
  if (!isPowerOfTwo(maxPayload) || maxPayload < 128 || maxPayload > 4096) {
    throw new DeviceDescriptionError('pcie.maxPayloadSize', `must be a power of two from 128 to 4096, not ${String(maxPayload)}`);
  }
  const linkSpeed = options.linkSpeed ?? 1;
  checkInteger('pcie.linkSpeed', linkSpeed, 1, 5);
  const linkWidth = options.linkWidth ?? 1;
  if (![1, 2, 4, 8, 12, 16, 32].includes(linkWidth)) {
    throw new DeviceDescriptionError('pcie.linkWidth', `must be 1, 2, 4, 8, 12, 16 or 32, not ${String(linkWidth)}`);
  }
  const bytes = Buffer.alloc(PCIE_CAPABILITY_SIZE);
  bytes[0] = CapabilityId.EXP;
  bytes.writeUInt16LE(2 | (deviceType << 4), PciExpress.FLAGS);
  const devcap =
    (Math.log2(maxPayload) - 7) | (1 << 15) /* role-based error reporting */ |
    (options.flr === false ? 0 : PciExpress.DEVCAP_FLR);
  bytes.writeUInt32LE(devcap >>> 0, PciExpress.DEVCAP);
  // Max read request 512 bytes, the reset default; max payload 128.
  bytes.writeUInt16LE(2 << 12, PciExpress.DEVCTL);
  if (deviceType !== 9) {
    bytes.writeUInt32LE(linkSpeed | (linkWidth << 4), PciExpress.LNKCAP);
    bytes.writeUInt16LE(linkSpeed | (linkWidth << 4), PciExpress.LNKSTA);
  }
  return new Uint8Array(bytes);
}

/** A vendor-specific capability: ID, next, length, then `data` (at most 252 bytes). */
export function vendorCapability(data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array)) {
    throw new DeviceDescriptionError('vendorCapabilities', 'each must be a Uint8Array');
  }
  const length = VENDOR_CAPABILITY_HEADER_SIZE + data.length;
  if (length > 0xff) {
    throw new DeviceDescriptionError('vendorCapabilities', `data must be at most ${0xff - VENDOR_CAPABILITY_HEADER_SIZE} bytes`);
  }
  const bytes = new Uint8Array(length);
  bytes[0] = CapabilityId.VENDOR;
  bytes[2] = length;
  bytes.set(data, VENDOR_CAPABILITY_HEADER_SIZE);
  return bytes;
}

function extendedHeader(id: number, version: number): number {
  return id | (version << 16);
}

/** The device serial number extended capability, with a 64-bit serial number. */
export function dsnCapability(serialNumber: bigint): Uint8Array {
  if (typeof serialNumber !== 'bigint' || serialNumber < 0n || serialNumber >= 1n << 64n) {
    throw new DeviceDescriptionError('serialNumber', 'must be a bigint from 0n to 2^64-1');
  }
  const bytes = Buffer.alloc(DSN_CAPABILITY_SIZE);
  bytes.writeUInt32LE(extendedHeader(ExtendedCapabilityId.DSN, 1), 0);
  bytes.writeBigUInt64LE(serialNumber, 4);
  return new Uint8Array(bytes);
}

/** A vendor-specific extended capability: its 8 header bytes, then `data`. */
export function extendedVendorCapability(options: ExtendedVendorOptions): Uint8Array {
  checkInteger('extendedVendorCapabilities.vsecId', options.vsecId, 0, 0xffff);
  const revision = options.revision ?? 0;
  checkInteger('extendedVendorCapabilities.revision', revision, 0, 0xf);
  const length = EXTENDED_VENDOR_HEADER_SIZE + options.data.length;
  if (length > 0xfff) {
    throw new DeviceDescriptionError('extendedVendorCapabilities.data', `must be at most ${0xfff - EXTENDED_VENDOR_HEADER_SIZE} bytes`);
  }
  const bytes = Buffer.alloc(length);
  bytes.writeUInt32LE(extendedHeader(ExtendedCapabilityId.VENDOR, 1), 0);
  bytes.writeUInt32LE((options.vsecId | (revision << 16) | (length << 20)) >>> 0, 4);
  Buffer.from(options.data.buffer, options.data.byteOffset, options.data.length).copy(bytes, EXTENDED_VENDOR_HEADER_SIZE);
  return new Uint8Array(bytes);
}
