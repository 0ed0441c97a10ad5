/**
 * The "scratchpad" card of vendor/libvfio-user/samples/sample_server.c,
 * written in TypeScript against the public API only, as a user of the
 * package would write it:
 *
 *   BAR0, 4 KiB memory:
 *     0x00  ID        read-only 0x5c000001
 *     0x04  SCRATCH   read/write
 *     0x08  DOORBELL  write N: raise interrupt vector N (MSI-X, MSI or INTx,
 *                     whichever the driver enabled)
 *     0x0c  RESETS    read-only: resets seen so far
 *     0x10  DMA_SUM   read-only: byte sum of the first DMA mapping's first
 *                     page (0 when none is mapped into this process)
 *     0x100-0xfff     plain RAM, any access size
 *   BAR2, 8 KiB memory: MSI-X table (0x0) and PBA (0x1000), 4 vectors.
 *   BAR4, 256 bytes of I/O: RAM as well.
 *   Capabilities: PM, MSI (4 vectors, 64-bit, per-vector masking), MSI-X,
 *   PCI Express with FLR, vendor-specific; extended: device serial number.
 */
import {
  MemoryRegion,
  PciDevice,
  RegisterMap,
  type DmaMapping,
  type RegionHandler,
  type ResetKind,
} from 'vfio-user';

export const SCRATCHPAD_ID = 0x5c000001;
const BAR0_SIZE = 0x1000;
const BAR0_RAM = 0x100;
const IO_RAM_SIZE = 0x100;
const VECTORS = 4;
const PAGE = 4096;

/** BAR0: the registers below 0x100, RAM from there to the end. */
class Bar0 implements RegionHandler {
  constructor(
    private readonly regs: RegisterMap,
    private readonly ram: MemoryRegion,
  ) {}

  read(offset: number, data: Buffer): void {
    this.split(offset, data, (handler, at, part) => handler.read(at, part));
  }

  write(offset: number, data: Buffer): void {
    this.split(offset, data, (handler, at, part) => handler.write(at, part));
  }

  /** Registers return to their reset values; the RAM keeps its contents, as in the C card. */
  reset(): void {
    this.regs.reset();
  }

  private split(offset: number, data: Buffer, access: (h: RegionHandler, at: number, part: Buffer) => void): void {
    const cut = Math.min(Math.max(BAR0_RAM - offset, 0), data.length);
    if (cut > 0) {
      access(this.regs, offset, data.subarray(0, cut));
    }
    if (cut < data.length) {
      access(this.ram, offset + cut, data.subarray(cut));
    }
  }
}

export class Scratchpad extends PciDevice {
  /** Resets seen, of every kind (the RESETS register). */
  resets = 0;
  /** Every reset, oldest first. */
  readonly resetKinds: ResetKind[] = [];
  /** The mapping DMA_SUM reads: the first one this process could read directly. */
  private dmaPage: DmaMapping | undefined;

  readonly regs = new RegisterMap({
    id: { offset: 0x00, width: 4, reset: SCRATCHPAD_ID, ro: true },
    scratch: { offset: 0x04, width: 4, rw: true },
    doorbell: { offset: 0x08, width: 4, write: ({ value }) => this.raise(value) },
    resets: { offset: 0x0c, width: 4, read: () => this.resets },
    dmaSum: { offset: 0x10, width: 4, read: () => this.dmaSum() },
  });

  /** BAR0 RAM (offsets 0x100 to 0xfff of it; the bytes below are unused) and the I/O BAR's RAM. */
  readonly ram = new MemoryRegion(BAR0_SIZE);
  readonly ioRam = new MemoryRegion(IO_RAM_SIZE);

  constructor() {
    super({
      vendorId: 0x1b36,
      deviceId: 0x1100,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
      classCode: 0xff0000,
      bars: [
        { index: 0, size: BAR0_SIZE, handler: () => new Bar0(this.regs, this.ram) },
        // The library emulates the table and PBA; the rest of the BAR reads as 0.
        { index: 2, size: 0x2000 },
        { index: 4, size: IO_RAM_SIZE, memory: false, handler: () => this.ioRam },
      ],
      intx: true,
      pm: { version: 3 },
      msi: { vectors: VECTORS, address64: true, perVectorMask: true },
      msix: { vectors: VECTORS, bar: 2, tableOffset: 0, pbaOffset: 0x1000 },
      pcie: { flr: true },
      vendorCapabilities: [Buffer.from('sampl', 'latin1')],
      serialNumber: 0x9abcdef012345678n,
      dma: { maxMappings: 64 },
    });
  }

  /**
   * Raises vector `vector` of the interrupt mode the driver chose, as the
   * doorbell does: MSI-X if enabled, else MSI if enabled, else INTx (which
   * has vector 0 only).
   *
   * @returns what `msix()`, `msi()` or `intx()` returned
   */
  raise(vector: number): boolean {
    const mode = this.signallingMode();
    if (mode === 'msix') {
      return this.msix(vector);
    }
    if (mode === 'msi') {
      return this.msi(vector);
    }
    if (vector !== 0) {
      throw new RangeError(`INTx has vector 0 only, not ${vector}`);
    }
    return this.intx();
  }

  /** The interrupt mode as the device's own config space says. */
  signallingMode(): 'msix' | 'msi' | 'intx' {
    const config = this.configSpace();
    const msix = this.capabilityOffset('msix');
    if (msix !== undefined && (config.readUInt16LE(msix + 2) & 0x8000) !== 0) {
      return 'msix';
    }
    const msi = this.capabilityOffset('msi');
    if (msi !== undefined && (config.readUInt16LE(msi + 2) & 0x1) !== 0) {
      return 'msi';
    }
    return 'intx';
  }

  override onReset(kind: ResetKind): void {
    this.resets++;
    this.resetKinds.push(kind);
    // The C card clears SCRATCH on every reset; the library restores the
    // register map on all but a lost connection, so that one is done here.
    if (kind === 'lost-connection') {
      this.regs.set('scratch', 0);
    }
  }

  override onDmaMap(mapping: DmaMapping): void {
    if (this.dmaPage === undefined && mapping.mapped && mapping.length >= PAGE && mapping.readable) {
      this.dmaPage = mapping;
    }
  }

  override onDmaUnmap(mapping: DmaMapping): void {
    if (mapping === this.dmaPage) {
      this.dmaPage = undefined;
    }
  }

  override onDisconnect(): void {
    this.dmaPage = undefined;
  }

  private dmaSum(): number {
    if (this.dmaPage === undefined) {
      return 0;
    }
    const memory = this.dma.view(this.dmaPage.iova, PAGE);
    let sum = 0;
    for (let i = 0; i < PAGE; i++) {
      sum += memory[i];
    }
    return sum >>> 0;
  }
}

export default (): Scratchpad => new Scratchpad();
