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
 * registers of a running DMA ignore writes. The engine moves
 * {@link EDU_DMA_CHUNK} bytes at a time. A DMA that fails (a card address
 * outside the buffer, guest memory not mapped, the client gone) leaves the
 * card buffer as it was (chunks read from guest memory are kept apart until
 * the last one arrived; chunks already written to guest memory stay
 * there), raises no interrupt and clears the start bit; the error is kept
 * in {@link EduDevice.dmaError} and reported with `dma.reportFault`, so the
 * server emits `'dma-fault'` and logs it. A guest address above 2^53 (no
 * exact JavaScript number) fails the same way rather than being rounded.
 *
 * Interrupts go out as MSI when the driver enabled MSI, as INTx otherwise.
 * The DMA engine uses `device.dma.read()` / `write()`, so it works whether
 * or not the client shares guest memory.
 *
 * It migrates with its registers, its buffer and a DMA in flight: at the
 * stop the engine parks between chunks, the state records the bytes moved,
 * and the destination moves the rest when it runs and then raises the
 * completion interrupt. A factorial in progress is finished at the stop.
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

/** Bytes the DMA engine moves at a time: the most a migration finds in flight. */
export const EDU_DMA_CHUNK = 512;

/** Version of the state edu migrates (`migration.version`). */
export const EDU_STATE_VERSION = 1;

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

/** The DMA in progress: its parameters are the DMA registers, which hold still while it runs. */
interface DmaJob {
  readonly command: number;
  readonly toRam: boolean;
  /** Guest address of byte 0. */
  readonly guest: number;
  /** Offset of byte 0 in the card buffer. */
  readonly card: number;
  readonly count: number;
  /** Bytes moved so far: whole chunks whose completion the engine took. */
  done: number;
  /** Guest memory to the card: what has been read, copied into the buffer when all has. */
  readonly staging: Buffer | undefined;
}

/**
 * A 64-bit address register as a number, or -1 when it is beyond 2^53 and
 * `Number()` would round it to another address.
 */
function exactAddress(value: bigint): number {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : -1;
}

/** Whether a DMA's card side lies in the buffer. */
function fitsBuffer(job: DmaJob): boolean {
  return job.card >= 0 && job.count <= EDU_BUFFER_SIZE && job.card + job.count <= EDU_BUFFER_SIZE;
}

/** The edu card. */
export class EduDevice extends PciDevice {
  /** Why the last DMA failed, or undefined when it worked (this process's diagnostic: it does not migrate). */
  dmaError: Error | undefined;
  /** The card's 4 KiB DMA buffer (BAR0 0x40000). */
  readonly buffer = new MemoryRegion(EDU_BUFFER_SIZE, { clearOnReset: true });
  private job: DmaJob | undefined;
  /** The factorial argument while the unit is busy. */
  private factorialInput: number | undefined;
  /**
   * Bumped by every reset, stop for migration and loaded state: work started
   * before one (a DMA loop, a factorial) sees it and drops what it was doing.
   */
  private epoch = 0;

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
        this.epoch++;
        this.job = undefined;
        this.factorialInput = undefined;
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
      // BAR0's handler is this composite, which saves nothing itself, so the
      // library carries none of it: the registers and the buffer are here.
      // Held interrupts and MSI (config space) are the library's and the client's.
      migration: { version: EDU_STATE_VERSION, save: () => this.saveState(), load: (state) => this.loadState(state) },
    });
  }

  /** Raises interrupt causes: ORs them into IRQ_STATUS and signals MSI or INTx. */
  raise(causes: number): void {
    this.regs.setBits('irqStatus', causes);
    if (!this.msi(0)) {
      this.intx();
    }
  }

  /** Bytes the running DMA has moved so far; undefined when none runs. */
  get dmaProgress(): number | undefined {
    return this.job?.done;
  }

  /**
   * Hook: the DMA engine issued the chunk at `offset` (from the start of the
   * transfer) of `length` bytes. The engine takes the chunk's completion
   * once the transfer and what this returns have both settled. The default
   * returns nothing; a subclass may return a promise to model a slower bus
   * (the migration tests hold a transfer in flight with it).
   */
  onDmaChunk(offset: number, length: number): Promise<void> | void {
    void offset;
    void length;
  }

  /**
   * Parks the card for migration, before it counts as stopped: a factorial
   * in progress is finished now, and the DMA loop is abandoned (epoch) at
   * the chunk in flight. That chunk's completion comes after the stop and
   * is dropped: data read is not applied and `done` does not move, so the
   * saved state and the source's card agree; the destination (or this
   * device, if the migration is cancelled) moves the chunk again. Reading
   * guest memory again, and writing the same buffer bytes again, give the
   * same result, so redoing a chunk is safe.
   */
  override onStop(): void {
    this.epoch++;
    if (this.factorialInput !== undefined) {
      this.finishFactorial(this.factorialInput);
    }
  }

  /** Runs again, here or migrated: a DMA that was in flight goes on from where it stopped. */
  override onResume(): void {
    if (this.job !== undefined) {
      this.runDma(this.job);
    }
  }

  /**
   * Version 1: the registers ({@link RegisterMap.saveState}; ID is constant
   * but costs nothing), the card buffer, then the DMA's progress: `done`
   * (u32) and, for a DMA into the card, the `done` bytes read so far. The
   * DMA's parameters are the DMA registers, frozen while it runs.
   */
  private saveState(): Uint8Array[] {
    const progress = Buffer.alloc(4);
    progress.writeUInt32LE(this.job?.done ?? 0);
    const job = this.job;
    const staged = job?.staging === undefined ? [] : [job.staging.subarray(0, job.done)];
    return [this.regs.saveState(), this.buffer.saveState(), progress, ...staged];
  }

  private loadState(state: Buffer): void {
    const registersSize = this.regs.saveState().length;
    const fixed = registersSize + EDU_BUFFER_SIZE + 4;
    if (state.length < fixed) {
      throw new RangeError(`edu state of ${state.length} bytes is shorter than ${fixed}`);
    }
    const registers = state.subarray(0, registersSize);
    const buffer = state.subarray(registersSize, registersSize + EDU_BUFFER_SIZE);
    const done = state.readUInt32LE(registersSize + EDU_BUFFER_SIZE);
    const staged = state.subarray(fixed);
    this.regs.loadState(Buffer.from(registers));
    this.buffer.loadState(Buffer.from(buffer));
    this.epoch++;
    this.factorialInput = undefined;
    this.job = this.running() ? this.makeJob(Number(this.regs.get('dmaCmd'))) : undefined;
    const job = this.job;
    const expected = job?.staging === undefined ? 0 : done;
    const consistent = job === undefined ? done === 0 : fitsBuffer(job) && done <= job.count;
    if (!consistent || staged.length !== expected) {
      this.job = undefined;
      throw new RangeError(`edu state: DMA progress ${done} with ${staged.length} staged bytes does not match the DMA registers`);
    }
    if (job !== undefined) {
      job.done = done;
      job.staging?.set(staged);
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
    this.factorialInput = n;
    const epoch = this.epoch;
    // Computed later, as by a unit beside the CPU: the guest sees BUSY.
    setImmediate(() => {
      if (epoch === this.epoch && this.factorialInput !== undefined) {
        this.finishFactorial(this.factorialInput);
      }
    });
  }

  private finishFactorial(n: number): void {
    this.factorialInput = undefined;
    this.regs.set('factorial', factorial(n));
    this.regs.clearBits('status', EduStatus.BUSY);
    if ((this.regs.get('status') & EduStatus.IRQ_ON_FACTORIAL) !== 0) {
      this.raise(EduIrq.FACTORIAL);
    }
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
    const job = this.makeJob(Number(command));
    if (job.guest < 0) {
      const register = job.toRam ? 'dmaDst' : 'dmaSrc';
      this.endDma(job.command, new RangeError(
        `DMA guest address 0x${this.regs.get(register).toString(16)} is beyond what a DMA address can be (2^53)`));
      return;
    }
    if (!fitsBuffer(job)) {
      this.endDma(job.command, new RangeError(
        `DMA of ${job.count} bytes at card address 0x${(job.card + EduRegister.BUFFER).toString(16)} leaves the buffer`));
      return;
    }
    this.job = job;
    this.runDma(job);
  }

  private makeJob(command: number): DmaJob {
    const toRam = (command & EduDmaCommand.TO_RAM) !== 0;
    const count = Number(this.regs.get('dmaCount'));
    return {
      command,
      toRam,
      guest: exactAddress(this.regs.get(toRam ? 'dmaDst' : 'dmaSrc')),
      card: exactAddress(this.regs.get(toRam ? 'dmaSrc' : 'dmaDst')) - EduRegister.BUFFER,
      count,
      done: 0,
      staging: toRam || count > EDU_BUFFER_SIZE ? undefined : Buffer.alloc(count),
    };
  }

  /** Moves the job's chunks from `done` on, one in flight at a time, until done, failed, or the epoch changes. */
  private runDma(job: DmaJob): void {
    const epoch = this.epoch;
    const step = async (): Promise<void> => {
      while (job.done < job.count) {
        const at = job.done;
        const length = Math.min(EDU_DMA_CHUNK, job.count - at);
        // A read goes into a buffer of its own, so a dropped chunk's late data lands nowhere.
        const moved = job.toRam
          ? this.dma.write(job.guest + at, this.buffer.buffer.subarray(job.card + at, job.card + at + length))
          : this.dma.read(job.guest + at, length);
        const [data] = await Promise.all([moved, this.onDmaChunk(at, length)]);
        if (epoch !== this.epoch) {
          return; // stopped, reset or replaced while the chunk was in flight: see onStop
        }
        if (data !== undefined) {
          job.staging?.set(data, at);
        }
        job.done = at + length;
      }
    };
    void step().then(
      () => {
        if (epoch === this.epoch) {
          if (job.staging !== undefined) {
            this.buffer.buffer.set(job.staging, job.card);
          }
          this.endDma(job.command, undefined);
        }
      },
      (err: Error) => {
        if (epoch === this.epoch) {
          this.endDma(job.command, err);
        }
      },
    );
  }

  private endDma(command: number, error: Error | undefined): void {
    this.job = undefined;
    this.dmaError = error;
    if (error !== undefined) {
      // The guest programmed it: the server's 'dma-fault' event and log show it.
      this.dma.reportFault(error);
    }
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
