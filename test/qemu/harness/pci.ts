/**
 * PCI as a guest's firmware would see it, driven through qtest: config
 * cycles through the 0xcf8/0xcfc ports (mechanism #1, the first 256 bytes)
 * and through ECAM memory (all 4 KiB, once the q35 host bridge's PCIEXBAR is
 * programmed), enumeration, capability lists, BAR sizing and assignment,
 * and the command register.
 */
import { QtestConnection } from './qtest';

/** Where the harness puts ECAM: q35's usual MMCONFIG base, 256 buses. */
export const ECAM_BASE = 0xb0000000;
/** Memory BARs are placed from here up (below 4 GiB, above ECAM). */
export const MEM_WINDOW = 0xe0000000;
/** I/O BARs are placed from here up. */
export const IO_WINDOW = 0xc000;

const CONFIG_ADDRESS = 0xcf8;
const CONFIG_DATA = 0xcfc;
/** q35 host bridge (0:0.0) PCIEXBAR register: base, length and enable bit. */
const Q35_PCIEXBAR = 0x60;

// Standard header registers (linux/pci_regs.h names in lower case).
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_STATUS_INTERRUPT = 0x8;

export const PCI_CAP_ID_PM = 0x01;
export const PCI_CAP_ID_MSI = 0x05;
export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_EXT_CAP_ID_DSN = 0x03;

export type AccessSize = 1 | 2 | 4;

export interface PciAddress {
  bus: number;
  slot: number;
  fn: number;
}

export const formatAddress = (a: PciAddress): string =>
  `${a.bus.toString(16).padStart(2, '0')}:${a.slot.toString(16).padStart(2, '0')}.${a.fn}`;

/** A BAR as sizing found it. */
export interface BarInfo {
  index: number;
  kind: 'memory' | 'io';
  is64: boolean;
  prefetchable: boolean;
  size: number;
}

/** A BAR after assignment. */
export interface AssignedBar extends BarInfo {
  address: number;
}

export interface Capability {
  id: number;
  offset: number;
}

export interface ExtendedCapability extends Capability {
  version: number;
}

/** Hands out naturally aligned BAR addresses from two windows. */
export class BarAllocator {
  constructor(
    private nextMemory = MEM_WINDOW,
    private nextIo = IO_WINDOW,
  ) {}

  take(kind: 'memory' | 'io', size: number): number {
    const align = (at: number): number => Math.ceil(at / size) * size;
    if (kind === 'memory') {
      const at = align(this.nextMemory);
      this.nextMemory = at + size;
      return at;
    }
    const at = align(this.nextIo);
    this.nextIo = at + size;
    if (this.nextIo > 0x10000) {
      throw new Error('I/O window exhausted');
    }
    return at;
  }
}

/** Config space access for the whole machine, by either mechanism. */
export class PciHost {
  private ecamBase: number | undefined;

  constructor(readonly qtest: QtestConnection) {}

  /** Whether ECAM is on (see `enableEcam`). */
  get ecam(): boolean {
    return this.ecamBase !== undefined;
  }

  /**
   * Programs q35's PCIEXBAR so that ECAM decodes at `base` (256 buses,
   * 256 MiB): upper half first, then the lower half with the enable bit.
   */
  async enableEcam(base = ECAM_BASE): Promise<void> {
    const hostBridge = { bus: 0, slot: 0, fn: 0 };
    await this.ioWrite(hostBridge, Q35_PCIEXBAR + 4, 4, 0);
    await this.ioWrite(hostBridge, Q35_PCIEXBAR, 4, (base | 1) >>> 0);
    this.ecamBase = base;
  }

  private static cf8(a: PciAddress, offset: number): number {
    return (0x80000000 | (a.bus << 16) | (a.slot << 11) | (a.fn << 8) | (offset & 0xfc)) >>> 0;
  }

  private static checkIo(offset: number, size: AccessSize): void {
    // QEMU silently drops a 0xcfc access that would cross the dword.
    if (offset < 0 || offset + size > 256 || (offset & 3) + size > 4) {
      throw new RangeError(`config mechanism #1 cannot do ${size} bytes at 0x${offset.toString(16)}`);
    }
  }

  /** Config read through 0xcf8/0xcfc. */
  async ioRead(a: PciAddress, offset: number, size: AccessSize): Promise<number> {
    PciHost.checkIo(offset, size);
    await this.qtest.outl(CONFIG_ADDRESS, PciHost.cf8(a, offset));
    const port = CONFIG_DATA + (offset & 3);
    return size === 1 ? this.qtest.inb(port) : size === 2 ? this.qtest.inw(port) : this.qtest.inl(port);
  }

  /** Config write through 0xcf8/0xcfc. */
  async ioWrite(a: PciAddress, offset: number, size: AccessSize, value: number): Promise<void> {
    PciHost.checkIo(offset, size);
    await this.qtest.outl(CONFIG_ADDRESS, PciHost.cf8(a, offset));
    const port = CONFIG_DATA + (offset & 3);
    if (size === 1) {
      await this.qtest.outb(port, value & 0xff);
    } else if (size === 2) {
      await this.qtest.outw(port, value & 0xffff);
    } else {
      await this.qtest.outl(port, value >>> 0);
    }
  }

  /** Guest-physical address of a config register in ECAM. */
  ecamAddress(a: PciAddress, offset: number): number {
    if (this.ecamBase === undefined) {
      throw new Error('ECAM is not enabled: call enableEcam() first');
    }
    if (offset < 0 || offset >= 4096) {
      throw new RangeError(`config offset 0x${offset.toString(16)} is outside 4 KiB`);
    }
    return this.ecamBase + ((a.bus << 20) | (a.slot << 15) | (a.fn << 12) | offset);
  }

  /** Config read through ECAM: any size at any offset (QEMU splits misaligned ones). */
  async ecamRead(a: PciAddress, offset: number, size: AccessSize): Promise<number> {
    const at = this.ecamAddress(a, offset);
    return size === 1 ? this.qtest.readb(at) : size === 2 ? this.qtest.readw(at) : this.qtest.readl(at);
  }

  /** Config write through ECAM. */
  async ecamWrite(a: PciAddress, offset: number, size: AccessSize, value: number): Promise<void> {
    const at = this.ecamAddress(a, offset);
    if (size === 1) {
      await this.qtest.writeb(at, value & 0xff);
    } else if (size === 2) {
      await this.qtest.writew(at, value & 0xffff);
    } else {
      await this.qtest.writel(at, value >>> 0);
    }
  }

  /** Reads with ECAM when it is on, else through the ports. */
  read(a: PciAddress, offset: number, size: AccessSize): Promise<number> {
    return this.ecam ? this.ecamRead(a, offset, size) : this.ioRead(a, offset, size);
  }

  /** Writes with ECAM when it is on, else through the ports. */
  write(a: PciAddress, offset: number, size: AccessSize, value: number): Promise<void> {
    return this.ecam ? this.ecamWrite(a, offset, size, value) : this.ioWrite(a, offset, size, value);
  }

  /** Every function present on a bus, found by reading vendor IDs. */
  async scan(bus = 0): Promise<Array<PciAddress & { vendorId: number; deviceId: number }>> {
    const found: Array<PciAddress & { vendorId: number; deviceId: number }> = [];
    for (let slot = 0; slot < 32; slot++) {
      for (let fn = 0; fn < 8; fn++) {
        const a = { bus, slot, fn };
        const ids = await this.ioRead(a, PCI_VENDOR_ID, 4);
        if ((ids & 0xffff) === 0xffff) {
          if (fn === 0) {
            break;
          }
          continue;
        }
        found.push({ ...a, vendorId: ids & 0xffff, deviceId: ids >>> 16 });
        if (fn === 0 && ((await this.ioRead(a, PCI_HEADER_TYPE, 1)) & 0x80) === 0) {
          break;
        }
      }
    }
    return found;
  }

  fn(a: PciAddress): PciFunction {
    return new PciFunction(this, a);
  }
}

/** One function: its config space, capabilities and BARs. */
export class PciFunction {
  /** Filled in by `assignBars`. */
  bars = new Map<number, AssignedBar>();

  constructor(
    readonly host: PciHost,
    readonly address: PciAddress,
  ) {}

  read(offset: number, size: AccessSize): Promise<number> {
    return this.host.read(this.address, offset, size);
  }
  write(offset: number, size: AccessSize, value: number): Promise<void> {
    return this.host.write(this.address, offset, size, value);
  }
  read8(offset: number): Promise<number> {
    return this.read(offset, 1);
  }
  read16(offset: number): Promise<number> {
    return this.read(offset, 2);
  }
  read32(offset: number): Promise<number> {
    return this.read(offset, 4);
  }
  write8(offset: number, value: number): Promise<void> {
    return this.write(offset, 1, value);
  }
  write16(offset: number, value: number): Promise<void> {
    return this.write(offset, 2, value);
  }
  write32(offset: number, value: number): Promise<void> {
    return this.write(offset, 4, value);
  }

  /** The standard capability list, in list order. */
  async capabilities(): Promise<Capability[]> {
    const caps: Capability[] = [];
    const status = await this.read16(PCI_STATUS);
    if ((status & 0x10) === 0) {
      return caps;
    }
    let offset = (await this.read8(PCI_CAPABILITY_LIST)) & 0xfc;
    while (offset !== 0) {
      if (caps.length >= 48 || offset < 0x40) {
        throw new Error(`capability list of ${formatAddress(this.address)} is malformed at 0x${offset.toString(16)}`);
      }
      const header = await this.read16(offset);
      caps.push({ id: header & 0xff, offset });
      offset = (header >> 8) & 0xfc;
    }
    return caps;
  }

  /** The extended capability list at 0x100 (needs ECAM). */
  async extendedCapabilities(): Promise<ExtendedCapability[]> {
    const caps: ExtendedCapability[] = [];
    let offset = 0x100;
    while (offset !== 0) {
      const header = await this.read32(offset);
      if (header === 0 || header === 0xffffffff) {
        break;
      }
      caps.push({ id: header & 0xffff, version: (header >>> 16) & 0xf, offset });
      offset = (header >>> 20) & 0xffc;
      if (caps.length > 64 || (offset !== 0 && offset < 0x100)) {
        throw new Error(`extended capability list of ${formatAddress(this.address)} is malformed`);
      }
    }
    return caps;
  }

  /** Offset of the first standard capability with that ID, or undefined. */
  async findCapability(id: number): Promise<number | undefined> {
    return (await this.capabilities()).find((c) => c.id === id)?.offset;
  }

  /**
   * Sizes every BAR the classic way: decoding off, write all ones, read the
   * mask back, restore the original value and the command register.
   */
  async sizeBars(): Promise<BarInfo[]> {
    const command = await this.read16(PCI_COMMAND);
    await this.write16(PCI_COMMAND, command & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
    const bars: BarInfo[] = [];
    try {
      for (let index = 0; index < 6; index++) {
        const reg = PCI_BASE_ADDRESS_0 + index * 4;
        const original = await this.read32(reg);
        await this.write32(reg, 0xffffffff);
        const mask = await this.read32(reg);
        await this.write32(reg, original);
        if (mask === 0) {
          continue;
        }
        if (mask & 1) {
          const bits = (mask & 0xfffffffc) | 0xffff0000;
          bars.push({ index, kind: 'io', is64: false, prefetchable: false, size: (~bits >>> 0) + 1 });
          continue;
        }
        const is64 = ((mask >> 1) & 3) === 2;
        const prefetchable = (mask & 8) !== 0;
        let size = (~(mask & 0xfffffff0) >>> 0) + 1;
        if (is64) {
          const upperReg = reg + 4;
          const upperOriginal = await this.read32(upperReg);
          await this.write32(upperReg, 0xffffffff);
          const upperMask = await this.read32(upperReg);
          await this.write32(upperReg, upperOriginal);
          const full = (BigInt(upperMask) << 32n) | BigInt((mask & 0xfffffff0) >>> 0);
          size = Number(BigInt.asUintN(64, ~full) + 1n);
          bars.push({ index, kind: 'memory', is64, prefetchable, size });
          index++; // the upper half is not a BAR of its own
          continue;
        }
        bars.push({ index, kind: 'memory', is64, prefetchable, size });
      }
    } finally {
      await this.write16(PCI_COMMAND, command);
    }
    return bars;
  }

  /** Sizes the BARs and programs each with an address from the allocator. */
  async assignBars(allocator = new BarAllocator()): Promise<Map<number, AssignedBar>> {
    const bars = await this.sizeBars();
    this.bars = new Map();
    for (const bar of bars) {
      const address = allocator.take(bar.kind, bar.size);
      const reg = PCI_BASE_ADDRESS_0 + bar.index * 4;
      await this.write32(reg, address);
      if (bar.is64) {
        await this.write32(reg + 4, 0);
      }
      this.bars.set(bar.index, { ...bar, address });
    }
    return this.bars;
  }

  /** Sets command register bits (default: I/O and memory decoding, bus mastering). */
  async enable(bits = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER): Promise<void> {
    const command = await this.read16(PCI_COMMAND);
    await this.write16(PCI_COMMAND, command | bits);
  }

  /** The assigned BAR, or an error naming what is missing. */
  bar(index: number): AssignedBar {
    const bar = this.bars.get(index);
    if (bar === undefined) {
      throw new Error(`BAR${index} of ${formatAddress(this.address)} is not assigned`);
    }
    return bar;
  }

  private barAt(index: number, offset: number, size: number): AssignedBar {
    const bar = this.bar(index);
    if (offset < 0 || offset + size > bar.size) {
      throw new RangeError(`BAR${index} access of ${size} bytes at 0x${offset.toString(16)} is outside its 0x${bar.size.toString(16)} bytes`);
    }
    return bar;
  }

  /** Reads a BAR register: MMIO through guest memory, I/O through ports. */
  async barRead(index: number, offset: number, size: 1 | 2 | 4): Promise<number> {
    const bar = this.barAt(index, offset, size);
    const q = this.host.qtest;
    const at = bar.address + offset;
    if (bar.kind === 'io') {
      return size === 1 ? q.inb(at) : size === 2 ? q.inw(at) : q.inl(at);
    }
    return size === 1 ? q.readb(at) : size === 2 ? q.readw(at) : q.readl(at);
  }

  /** Writes a BAR register: MMIO through guest memory, I/O through ports. */
  async barWrite(index: number, offset: number, size: 1 | 2 | 4, value: number): Promise<void> {
    const bar = this.barAt(index, offset, size);
    const q = this.host.qtest;
    const at = bar.address + offset;
    if (bar.kind === 'io') {
      await (size === 1 ? q.outb(at, value) : size === 2 ? q.outw(at, value) : q.outl(at, value));
      return;
    }
    await (size === 1 ? q.writeb(at, value) : size === 2 ? q.writew(at, value) : q.writel(at, value));
  }

  /** A 64-bit MMIO read. */
  barRead64(index: number, offset: number): Promise<bigint> {
    const bar = this.barAt(index, offset, 8);
    if (bar.kind !== 'memory') {
      throw new Error(`BAR${index} is an I/O BAR: no 64-bit accesses`);
    }
    return this.host.qtest.readq(bar.address + offset);
  }

  /** A 64-bit MMIO write. */
  async barWrite64(index: number, offset: number, value: bigint): Promise<void> {
    const bar = this.barAt(index, offset, 8);
    if (bar.kind !== 'memory') {
      throw new Error(`BAR${index} is an I/O BAR: no 64-bit accesses`);
    }
    await this.host.qtest.writeq(bar.address + offset, value);
  }

  /** Reads a block of an MMIO BAR in one qtest command. */
  barReadBlock(index: number, offset: number, size: number): Promise<Buffer> {
    const bar = this.barAt(index, offset, size);
    return this.host.qtest.read(bar.address + offset, size);
  }

  /** Writes a block of an MMIO BAR in one qtest command. */
  async barWriteBlock(index: number, offset: number, data: Uint8Array): Promise<void> {
    const bar = this.barAt(index, offset, data.length);
    await this.host.qtest.write(bar.address + offset, data);
  }
}
