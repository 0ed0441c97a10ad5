/**
 * A teaching device in the spirit of QEMU's "edu" device, with its IDs and
 * register map, so that drivers written for that device drive this one:
 * an identification register, a liveness check, a factorial unit, an
 * interrupt status with raise and acknowledge registers, and a DMA engine
 * that copies between guest memory and a 4 KiB buffer on the card.
 *
 * BAR0: 1 MiB of memory space.
 *
 * | Offset  | Name          | Access | Meaning                                                         |
 * | ------- | ------------- | ------ | --------------------------------------------------------------- |
 * | 0x00    | ID            | RO     | 0x010000ed: version 1.0                                         |
 * | 0x04    | LIVENESS      | RW     | reads back the bitwise inverse of what was written              |
 * | 0x08    | FACTORIAL     | RW     | write n: computes n! (mod 2^32) into it; ignored while busy      |
 * | 0x20    | STATUS        | RW     | bit 0 (RO) factorial busy; bit 7 raise interrupt 0x1 when done  |
 * | 0x24    | IRQ_STATUS    | RO     | OR of every interrupt cause raised and not acknowledged         |
 * | 0x60    | IRQ_RAISE     | WO     | ORs the value into IRQ_STATUS and raises the interrupt          |
 * | 0x64    | IRQ_ACK       | WO     | clears those bits of IRQ_STATUS                                 |
 * | 0x80    | DMA_SRC       | RW     | 64-bit source address                                           |
 * | 0x88    | DMA_DST       | RW     | 64-bit destination address                                      |
 * | 0x90    | DMA_COUNT     | RW     | bytes to copy                                                   |
 * | 0x98    | DMA_CMD       | RW     | bit 0 start (reads 1 while running), bit 1 direction (0: guest  |
 * |         |               |        | memory to the card, 1: card to guest memory), bit 2 raise       |
 * |         |               |        | interrupt 0x100 when done                                       |
 * | 0x40000 | BUFFER        | RW     | the card's 4 KiB DMA buffer                                     |
 *
 * The card side of a DMA is addressed as BAR0 offsets, 0x40000 to 0x40fff
 * (DMA_DST when copying to the card, DMA_SRC when copying from it). The
 * registers of a running DMA ignore writes. A DMA that fails (a card
 * address outside the buffer, guest memory not mapped, the client gone)
 * copies nothing, raises no interrupt and clears the start bit; the error
 * is kept in {@link EduDevice.dmaError}.
 *
 * Interrupts go out as MSI when the driver enabled MSI, as INTx otherwise.
 * The DMA engine uses `device.dma.read()` / `write()`, so it works whether
 * or not the client shares guest memory.
 *
 * Serve it with `npx vfio-user serve examples/edu.ts --socket /tmp/edu.sock`.
 */
import { MemoryRegion, PciDevice, RegisterMap, type RegionHandler } from 'vfio-user';

/** BAR0 offsets. */
export const EduRegister = {
  ID: 0x00,
  LIVENESS: 0x04,
  FACTORIAL: 0x08,
  STATUS: 0x20,
  IRQ_STATUS: 0x24,
  IRQ_RAISE: 0x60,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
  BUFFER: 0x40000,
} as const;

/** STATUS bits. */
export const EduStatus = { BUSY: 0x01, IRQ_ON_FACTORIAL: 0x80 } as const;

/** DMA_CMD bits. */
export const EduDmaCommand = { START: 0x1, TO_RAM: 0x2, IRQ: 0x4 } as const;

/** Interrupt causes in IRQ_STATUS. */
export const EduIrq = { FACTORIAL: 0x1, DMA: 0x100 } as const;

/** Size of the card's DMA buffer. */
export const EDU_BUFFER_SIZE = 4096;

const BAR_SIZE = 1 << 20;
const REGISTERS_END = 0x100;

/** n! modulo 2^32, as a 32-bit register holds it. */
function factorial(n: number): number {
  let product = 1;
  // From 34! on, the product has 32 factors of two and stays 0.
  for (let k = n; k > 1 && product !== 0; k--) {
    product = Math.imul(product, k);
  }
  return product >>> 0;
}

/** The edu card. */
export class EduDevice extends PciDevice {
  /** Why the last DMA failed, or undefined when it worked. */
  dmaError: Error | undefined;
  /** The card's 4 KiB DMA buffer (BAR0 0x40000). */
  readonly buffer = new MemoryRegion(EDU_BUFFER_SIZE, { clearOnReset: true });
  /** Bumped by every reset, so that work started before one is dropped. */
  private generation = 0;

  /** The registers at the start of BAR0. */
  readonly regs = new RegisterMap({
    id: { offset: EduRegister.ID, width: 4, reset: 0x010000ed },
    liveness: { offset: EduRegister.LIVENESS, width: 4, rw: true, read: (stored) => ~stored },
    factorial: {
      offset: EduRegister.FACTORIAL, width: 4, rw: true,
      write: ({ previous, current }) => this.startFactorial(previous, current),
    },
    status: { offset: EduRegister.STATUS, width: 4, rw: EduStatus.IRQ_ON_FACTORIAL },
    irqStatus: { offset: EduRegister.IRQ_STATUS, width: 4 },
    irqRaise: { offset: EduRegister.IRQ_RAISE, width: 4, write: ({ value }) => this.raise(value) },
    irqAck: { offset: EduRegister.IRQ_ACK, width: 4, write: ({ value }) => this.regs.clearBits('irqStatus', value) },
    dmaSrc: { offset: EduRegister.DMA_SRC, width: 8, rw: true, write: ({ previous }) => this.keepWhileRunning('dmaSrc', previous) },
    dmaDst: { offset: EduRegister.DMA_DST, width: 8, rw: true, write: ({ previous }) => this.keepWhileRunning('dmaDst', previous) },
    dmaCount: { offset: EduRegister.DMA_COUNT, width: 8, rw: true, write: ({ previous }) => this.keepWhileRunning('dmaCount', previous) },
    dmaCmd: { offset: EduRegister.DMA_CMD, width: 8, rw: 0x7n, write: ({ previous, current }) => this.startDma(previous, current) },
  });

  constructor() {
    const bar0: RegionHandler = {
      read: (offset, data) => this.region(offset).read(offset - this.base(offset), data),
      write: (offset, data) => this.region(offset).write(offset - this.base(offset), data),
      reset: () => {
        this.generation++;
        this.dmaError = undefined;
        this.regs.reset();
        this.buffer.reset();
      },
    };
    super({
      vendorId: 0x1234,
      deviceId: 0x11e8,
      revision: 0x10,
      classCode: 0x00ff00, // unclassified
      bars: [{ index: 0, size: BAR_SIZE, handler: bar0 }],
      intx: true,
      msi: { vectors: 1, address64: true },
    });
  }

  /** Raises interrupt causes: ORs them into IRQ_STATUS and signals MSI or INTx. */
  raise(causes: number): void {
    this.regs.setBits('irqStatus', causes);
    if (!this.msi(0)) {
      this.intx();
    }
  }

  private base(offset: number): number {
    return offset >= EduRegister.BUFFER ? EduRegister.BUFFER : 0;
  }

  private region(offset: number): RegionHandler {
    if (offset < REGISTERS_END) {
      return this.regs;
    }
    if (offset >= EduRegister.BUFFER && offset < EduRegister.BUFFER + EDU_BUFFER_SIZE) {
      return this.buffer;
    }
    return UNUSED;
  }

  private startFactorial(previous: number, n: number): void {
    if ((this.regs.get('status') & EduStatus.BUSY) !== 0) {
      this.regs.set('factorial', previous);
      return;
    }
    this.regs.setBits('status', EduStatus.BUSY);
    const generation = this.generation;
    // Computed later, as by a unit beside the CPU: the guest sees BUSY.
    setImmediate(() => {
      if (generation !== this.generation) {
        return;
      }
      this.regs.set('factorial', factorial(n));
      this.regs.clearBits('status', EduStatus.BUSY);
      if ((this.regs.get('status') & EduStatus.IRQ_ON_FACTORIAL) !== 0) {
        this.raise(EduIrq.FACTORIAL);
      }
    });
  }

  private running(): boolean {
    return (this.regs.get('dmaCmd') & BigInt(EduDmaCommand.START)) !== 0n;
  }

  /** A DMA register written while a DMA runs keeps its value. */
  private keepWhileRunning(name: 'dmaSrc' | 'dmaDst' | 'dmaCount', previous: bigint): void {
    if (this.running()) {
      this.regs.set(name, previous);
    }
  }

  private startDma(previous: bigint, command: bigint): void {
    const start = BigInt(EduDmaCommand.START);
    if ((previous & start) !== 0n) {
      this.regs.set('dmaCmd', previous); // one DMA at a time
      return;
    }
    if ((command & start) === 0n) {
      return;
    }
    const generation = this.generation;
    void this.runDma(Number(command)).then(
      () => this.finishDma(generation, Number(command), undefined),
      (err: Error) => this.finishDma(generation, Number(command), err),
    );
  }

  private async runDma(command: number): Promise<void> {
    const toRam = (command & EduDmaCommand.TO_RAM) !== 0;
    const count = Number(this.regs.get('dmaCount'));
    const guest = Number(this.regs.get(toRam ? 'dmaDst' : 'dmaSrc'));
    const card = Number(this.regs.get(toRam ? 'dmaSrc' : 'dmaDst')) - EduRegister.BUFFER;
    if (card < 0 || count > EDU_BUFFER_SIZE || card + count > EDU_BUFFER_SIZE) {
      throw new RangeError(`DMA of ${count} bytes at card address 0x${(card + EduRegister.BUFFER).toString(16)} leaves the buffer`);
    }
    const bytes = this.buffer.buffer.subarray(card, card + count);
    if (toRam) {
      await this.dma.write(guest, bytes);
    } else {
      // Read apart and copied in at the end, so that a failed read leaves the buffer as it was.
      bytes.set(await this.dma.read(guest, count));
    }
  }

  private finishDma(generation: number, command: number, error: Error | undefined): void {
    if (generation !== this.generation) {
      return;
    }
    this.dmaError = error;
    this.regs.clearBits('dmaCmd', BigInt(EduDmaCommand.START));
    if (error === undefined && (command & EduDmaCommand.IRQ) !== 0) {
      this.raise(EduIrq.DMA);
    }
  }
}

/** Reads of BAR0 outside the registers and the buffer return 0; writes are dropped. */
const UNUSED: RegionHandler = {
  read: (_offset, data) => {
    data.fill(0);
  },
  write: () => undefined,
};

/** The CLI serves what the default export makes. */
export default (): EduDevice => new EduDevice();
