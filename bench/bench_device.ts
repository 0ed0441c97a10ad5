/**
 * The TypeScript device of the benchmarks: the register layout of
 * bench/c_device.c.
 *
 *   BAR0: a raw RegionHandler (a switch over offsets, like the C device's).
 *   BAR1: a RegisterMap with a read/write register at 0x4.
 *   BAR2: the MSI-X table (0x0) and PBA (0x800), emulated by the library.
 */
import { PciDevice, RegisterMap, type RegionHandler } from 'vfio-user';

const BAR0_ID = 0x00;
const BAR0_SCRATCH = 0x04;
const BAR0_IRQ_FIRE = 0x08;
const BAR0_IRQ_FAILED = 0x0c;
const BAR0_DMA_LEN = 0x10;
const BAR0_DMA_COUNT = 0x14;
const BAR0_DMA_GO = 0x18;
const BAR0_DMA_ERR = 0x1c;
const BAR0_STARTUP_LO = 0x20;
const BAR0_STARTUP_HI = 0x24;
const BENCH_ID = 0x5c0b0001;
const EFAULT = 14;
const EINVAL = 22;
/** Mappings at least this long are for the summing loop. */
const SUM_MAPPING = 64 << 20;
const DMA_BUFFER_BYTES = 1 << 20;

/** DMA_GO operations (see bench/bench_client.c). */
const Op = {
  READ_SYNC: 1, WRITE_SYNC: 2, VIEW_COPY: 3, READ_ASYNC: 4,
  MSG_READ: 5, MSG_WRITE: 6, SUM_MAPPED: 7, SUM_PLAIN: 8,
} as const;

export class BenchDevice extends PciDevice {
  scratch = 0;
  irqFailed = 0;
  dmaLen = 0;
  dmaCount = 0;
  dmaErr = 0;
  startupNs = 0;
  sum = 0;
  /** What DMA writes send and reads land in, made at the first DMA (a fleet of devices never needs them). */
  private dmaBuffers: { source: Buffer; sink: Buffer } | undefined;
  /** A plain Buffer the size of the summed guest memory, filled alike. */
  private plain: Buffer | undefined;

  readonly raw: RegionHandler = {
    read: (offset: number, data: Buffer): void => {
      if (data.length !== 4) {
        return;
      }
      let value = 0;
      switch (offset) {
        case BAR0_ID: value = BENCH_ID; break;
        case BAR0_SCRATCH: value = this.scratch; break;
        case BAR0_IRQ_FAILED: value = this.irqFailed; break;
        case BAR0_DMA_LEN: value = this.dmaLen; break;
        case BAR0_DMA_COUNT: value = this.dmaCount; break;
        case BAR0_DMA_ERR: value = this.dmaErr; break;
        case BAR0_STARTUP_LO: value = this.startupNs % 2 ** 32; break;
        case BAR0_STARTUP_HI: value = Math.floor(this.startupNs / 2 ** 32); break;
      }
      data.writeUInt32LE(value, 0);
    },
    write: (offset: number, data: Buffer): void => {
      if (data.length !== 4) {
        return;
      }
      const value = data.readUInt32LE(0);
      switch (offset) {
        case BAR0_SCRATCH: this.scratch = value; break;
        case BAR0_IRQ_FIRE: this.fire(value); break;
        case BAR0_DMA_LEN: this.dmaLen = value; break;
        case BAR0_DMA_COUNT: this.dmaCount = value; break;
        case BAR0_DMA_GO: this.dmaGo(value); break;
      }
    },
  };

  readonly regs = new RegisterMap({
    scratch: { offset: 0x4, width: 4, rw: true },
  });

  constructor() {
    super({
      vendorId: 0x1b36,
      deviceId: 0x11bf,
      bars: [
        { index: 0, size: 0x1000, handler: () => this.raw },
        { index: 1, size: 0x1000, handler: () => this.regs },
        { index: 2, size: 0x1000 },
      ],
      msix: { vectors: 1, bar: 2, tableOffset: 0, pbaOffset: 0x800 },
    });
  }

  private fire(count: number): void {
    let failed = 0;
    for (let i = 0; i < count; i++) {
      if (!this.msix(0)) {
        failed++;
      }
    }
    this.irqFailed = failed;
  }

  /** Runs a DMA_GO operation and raises MSI-X vector 0 when it is done (the client waits for that). */
  private dmaGo(op: number): void {
    const pending = this.startDma(op);
    if (typeof pending === 'number') {
      this.dmaErr = pending;
      this.msix(0);
      return;
    }
    this.dmaErr = 0;
    pending.then(
      () => this.msix(0),
      (err: { errno?: number }) => {
        this.dmaErr = err.errno ?? EINVAL;
        this.msix(0);
      },
    );
  }

  /** An errno when the operation ran (or failed) at once; a promise for the asynchronous ones. */
  private startDma(op: number): number | Promise<void> {
    const len = this.dmaLen;
    if (op === Op.SUM_MAPPED || op === Op.SUM_PLAIN) {
      return this.sumGo(op, len);
    }
    const messages = op === Op.MSG_READ || op === Op.MSG_WRITE;
    const mapping = this.dma.mappings.find((m) => m.mapped !== messages && m.length < SUM_MAPPING);
    if (mapping === undefined) {
      return EFAULT;
    }
    const { iova } = mapping;
    this.dmaBuffers ??= { source: Buffer.alloc(DMA_BUFFER_BYTES, 0xa5), sink: Buffer.alloc(DMA_BUFFER_BYTES) };
    const { source: dmaSource, sink: dmaSink } = this.dmaBuffers;
    if (len > mapping.length || len > DMA_BUFFER_BYTES) {
      return EINVAL;
    }
    const sink = dmaSink.subarray(0, len);
    const source = dmaSource.subarray(0, len);
    switch (op) {
      case Op.READ_SYNC:
        for (let i = 0; i < this.dmaCount; i++) {
          this.dma.readSync(iova, sink);
        }
        return 0;
      case Op.WRITE_SYNC:
        for (let i = 0; i < this.dmaCount; i++) {
          this.dma.writeSync(iova, source);
        }
        return 0;
      case Op.VIEW_COPY:
        // Zero-copy view, copied into memory the device already has.
        for (let i = 0; i < this.dmaCount; i++) {
          this.dma.view(iova, len).copy(dmaSink);
        }
        return 0;
      case Op.READ_ASYNC:
      case Op.MSG_READ:
      case Op.MSG_WRITE:
        return this.loop(op === Op.MSG_WRITE, iova, op === Op.MSG_WRITE ? source : sink, this.dmaCount);
    }
    return EINVAL;
  }

  /** One access at a time, each awaited, as a device's engine would do them. */
  private async loop(write: boolean, iova: number, data: Buffer, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      if (write) {
        await this.dma.write(iova, data);
      } else {
        await this.dma.read(iova, data);
      }
    }
  }

  /** Sums 32-bit words of the large mapping, or of a plain Buffer of the same size. */
  private sumGo(op: number, len: number): number {
    const mapping = this.dma.mappings.find((m) => m.mapped && m.length >= SUM_MAPPING);
    if (mapping === undefined || len > mapping.length || len % 4 !== 0) {
      return mapping === undefined ? EFAULT : EINVAL;
    }
    let bytes: Buffer;
    if (op === Op.SUM_MAPPED) {
      bytes = this.dma.view(mapping.iova, len);
    } else {
      if (this.plain?.length !== len) {
        this.plain = Buffer.from(this.dma.view(mapping.iova, len));
      }
      bytes = this.plain;
    }
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, len / 4);
    for (let i = 0; i < this.dmaCount; i++) {
      this.sum = sumWords(words);
    }
    return 0;
  }
}

/** The loop under test: the same function for both kinds of memory. */
function sumWords(words: Uint32Array): number {
  let sum = 0;
  for (let i = 0; i < words.length; i++) {
    sum = (sum + words[i]) >>> 0;
  }
  return sum;
}
