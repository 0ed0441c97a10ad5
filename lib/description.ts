/**
 * The description of a PCI device: what `lspci -vv` would show, and the
 * handlers of its BARs and config registers. `device-plan.ts` validates it.
 *
 * @packageDocumentation
 */
import type { ExtendedVendorOptions, MsiOptions, PcieOptions, PmOptions } from './capabilities';
import type { DeviceMigration } from './migration';
import type { RegionHandler } from './region';

/** A region handler, or a function returning one (called once, when the device is served). */
export type RegionHandlerSource = RegionHandler | (() => RegionHandler);

/** Which accesses a BAR's handler takes; the client gets EINVAL for others, which never reach it. */
export interface BarAccessRules {
  /** Access sizes in bytes, from 1, 2, 4 and 8 (default: any size). */
  readonly sizes?: readonly number[];
  /** Only naturally aligned accesses: the offset a multiple of the size (default false). */
  readonly aligned?: boolean;
}

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
   * Answers the client's accesses. A device may instead give it after
   * `super()` with `PciDevice.setBarHandler`. Without either, reads
   * return zeros and writes are dropped (e.g. a BAR holding only the MSI-X
   * table).
   */
  readonly handler?: RegionHandlerSource;
  /** The accesses its handler takes (default: any size at any offset). */
  readonly access?: BarAccessRules;
  /**
   * Memory BARs only: the ranges backed by shared memory that the client
   * maps, so that its accesses there reach `PciDevice.barMemory` with
   * no message at all; `true` maps the whole BAR. Offsets and sizes are
   * multiples of the host page size. The handler answers the rest of the
   * BAR. See docs/fast-paths.md for the cost: QEMU then waits for every
   * trapped write of the device.
   */
  readonly mapped?: true | readonly BarRange[];
}

/** A byte range of a BAR. */
export interface BarRange {
  /** First byte, from the BAR's start. */
  readonly offset: number;
  /** Bytes. */
  readonly size: number;
}

/** A range of config space whose registers the device answers itself. */
export interface ConfigRegistersDescription {
  /** First byte: dword-aligned, from 0x40 (after the standard header). */
  readonly offset: number;
  /** Bytes, a multiple of 4. Capabilities are placed around the range. */
  readonly size: number;
  /** Answers the client's accesses, at offsets from the range's start. */
  readonly handler: RegionHandlerSource;
}

/**
 * A vendor-specific capability (ID 0x09) whose contents the device serves as
 * they are read, for live state: counters, status, a mailbox.
 */
export interface LiveVendorCapabilityDescription {
  /** Its Length field: all its bytes, the 3 header bytes included (4 to 255). */
  readonly length: number;
  /**
   * Answers the client's reads and writes of its contents, at offsets from
   * the capability's first byte: the contents start at 3, the header before
   * them (ID, next pointer, length) is the library's.
   */
  readonly handler: RegionHandlerSource;
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

/**
 * A doorbell: a register whose writes only tell the device "look now", as
 * a queue's tail or notify register does. A client that supports ioeventfds
 * turns each write into a kick of an eventfd, with no message; the device
 * gets `PciDevice.onDoorbell` with the number of kicks since the last
 * call, never the value written. A write at the doorbell's offset, of its
 * size (and equal to `datamatch` when given) that comes as a REGION_WRITE
 * instead is one kick too, and does not reach the BAR's handler; any other
 * write there does.
 */
export interface DoorbellDescription {
  /** What the datasheet calls it (default: `doorbell N`, N its place in `doorbells`). */
  readonly name?: string;
  /** The BAR it is in: a BAR the description has, memory or I/O. */
  readonly bar: number;
  /** Its offset in the BAR, clear of the MSI-X table and PBA. */
  readonly offset: number;
  /** The write's size: 1, 2, 4 or 8 bytes. */
  readonly size: number;
  /**
   * Only writes of this value kick it (others are ordinary writes for the
   * BAR's handler). Several doorbells may share an offset and size with
   * different values, as virtio's notify register does with queue numbers.
   */
  readonly datamatch?: number | bigint;
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
  /**
   * Vendor-specific capabilities: fixed ones as the data after their 3
   * header bytes, live ones as a length and a handler of their contents.
   */
  readonly vendorCapabilities?: readonly (Uint8Array | LiveVendorCapabilityDescription)[];
  /** Vendor-specific extended capabilities (PCI Express and PCI-X 2 only). */
  readonly extendedVendorCapabilities?: readonly ExtendedVendorOptions[];
  /** A device serial number extended capability (PCI Express and PCI-X 2 only). */
  readonly serialNumber?: bigint;
  /**
   * Device-specific registers in config space: each range's handler answers
   * the client's accesses there (e.g. registers at 0x40). Capabilities are
   * placed clear of them.
   */
  readonly configRegisters?: readonly ConfigRegistersDescription[];
  /**
   * The expansion ROM (region 6): its bytes, or the path of a file holding
   * them, read when the device is constructed. The ROM BAR is the next power
   * of two from 2 KiB that holds them (the rest reads as zeros); the ROM is
   * read-only, writes to it are ignored as on hardware.
   */
  readonly expansionRom?: Uint8Array | string;
  /** Registers whose writes only kick the device (see {@link DoorbellDescription}). */
  readonly doorbells?: readonly DoorbellDescription[];
  /** Accept DMA mappings from the client (default true), at most `maxMappings` (default 1024). */
  readonly dma?: boolean | { readonly maxMappings?: number };
  /**
   * The device can be migrated: `true` when the library's share of its
   * state (register maps and memory regions of its BARs, mapped BARs'
   * memory, MSI-X table and PBA) is all of it, or how it saves and loads its own. Without it the
   * device offers no migration.
   */
  readonly migration?: true | DeviceMigration;
}

/** The capabilities a description can ask for. */
export type CapabilityKind = 'pm' | 'msi' | 'msix' | 'pcie' | 'vendor' | 'dsn' | 'extended-vendor';
