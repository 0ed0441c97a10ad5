/**
 * The NVMe controller: a PCI Express function with BAR0 holding the
 * controller registers and the doorbells, MSI-X with one vector per
 * completion queue (INTx when the driver has not enabled MSI-X), and
 * FLR. This module holds the state machine (CC.EN, CC.SHN, CSTS) and the
 * queue engine: fetching commands, completing them in order of finishing,
 * phase tags, interrupts, and the shadow doorbells of Doorbell Buffer
 * Config. The commands themselves are in admin-commands.ts and
 * io-commands.ts.
 */
import { PciDevice, type RegionHandler, type ResetKind } from 'vfio-user';

import { AdminCommands } from './admin-commands';
import { decodeCommand, HELD, type Command, type Completion } from './command';
import { CommandError } from './command-error';
import { AsyncEvent, Cc, CQ_ENTRY_SIZE, Csts, MAX_IO_QUEUES, MAX_QUEUE_ENTRIES, NvmeRegister, SQ_ENTRY_SIZE, Status } from './constants';
import type { ControllerIdentity } from './identify';
import { IoCommands } from './io-commands';
import type { BackingFile } from './namespace';
import { CompletionQueue, SubmissionQueue, type PendingCompletion, type ShadowSlots } from './queues';
import { loadControllerState, NVME_STATE_VERSION, saveControllerState } from './migration-state';
import { applyRegisterWrite, registerImage, REGISTER_BLOCK_SIZE, type RegisterValues } from './registers';

/** Largest memory page size exponent (CAP.MPSMAX: 2^(12 + 4) = 64 KiB). */
const MPS_MAX = 4;
/** CAP.TO in 500 ms units: how long the host waits for CSTS.RDY. */
const READY_TIMEOUT = 20;
const VERSION_1_4 = 0x00010400;
const BAR0_SIZE = 0x4000;
/** Bytes between doorbells (CAP.DSTRD = 0). */
const DOORBELL_STRIDE = 4;

/** CAP: MQES, contiguous queues required, TO, NVM command set, MPSMIN 4 KiB, MPSMAX. */
const CAPABILITIES =
  BigInt(MAX_QUEUE_ENTRIES - 1) | (1n << 16n) | (BigInt(READY_TIMEOUT) << 24n) | (1n << 37n) | (BigInt(MPS_MAX) << 52n);

/** Counters a bench or test reads. */
export interface ControllerStatistics {
  /** MMIO writes to doorbell registers. */
  doorbellWrites: number;
  /** Commands fetched from submission queues. */
  commands: number;
  /** Completions posted. */
  completions: number;
  /** Interrupts signalled. */
  interrupts: number;
}

/** What a controller offers beyond the required commands. */
export interface NvmeControllerOptions {
  /**
   * Offer Doorbell Buffer Config (default true): the host then writes most
   * doorbells into guest memory rather than by MMIO. Off, every doorbell
   * is a region-write message (for measuring what the buffer saves).
   */
  readonly doorbellBuffer?: boolean;
}

/** An NVMe 1.4 controller with one namespace backed by a file. */
export class NvmeController extends PciDevice {
  readonly statistics: ControllerStatistics = { doorbellWrites: 0, commands: 0, completions: 0, interrupts: 0 };
  /** The options in force, defaults filled in. */
  readonly options: Required<NvmeControllerOptions>;
  /** Why the last command failed, for the device's log (never sent to the host). */
  lastCommandError: string | undefined;
  /** @internal */ readonly registers: RegisterValues = { cc: 0, csts: 0, intms: 0, aqa: 0, asq: 0n, acq: 0n };
  /** @internal */ readonly submissionQueues: Array<SubmissionQueue | undefined> = [];
  /** @internal */ readonly completionQueues: Array<CompletionQueue | undefined> = [];
  /** @internal Guest addresses of the shadow doorbell and event index buffers, once configured. */
  doorbellBuffer: { doorbells: number; eventIndexes: number } | undefined;
  /**
   * Bumped by every controller reset: work started before one sees it and
   * posts nothing.
   */
  private epoch = 0;
  /** @internal */ readonly admin: AdminCommands;
  /** @internal */ readonly io: IoCommands;
  private readonly interruptsDue = new Set<CompletionQueue>();
  private outstanding = 0;
  private drained: Array<() => void> = [];

  constructor(
    /** The namespace's file. */
    readonly namespace: BackingFile,
    /** Vendor, serial, model, firmware as Identify reports them. */
    readonly identity: ControllerIdentity,
    options: NvmeControllerOptions = {},
  ) {
    const bar0: RegionHandler = {
      read: (offset, data) => this.readBar0(offset, data),
      write: (offset, data) => this.writeBar0(offset, data),
      reset: () => this.resetRegisters(),
    };
    super({
      vendorId: identity.vendorId,
      deviceId: 0x0e4e,
      subsystemVendorId: identity.vendorId,
      subsystemId: 0x0e4e,
      classCode: 0x010802, // mass storage, non-volatile memory, NVM Express
      bars: [{ index: 0, size: BAR0_SIZE, bits64: true, handler: bar0 }],
      intx: true,
      msix: { vectors: MAX_IO_QUEUES + 1, bar: 4 },
      pcie: { flr: true },
      migration: {
        version: NVME_STATE_VERSION,
        save: () => saveControllerState(this),
        load: (state) => this.loadState(state),
      },
    });
    this.options = { doorbellBuffer: options.doorbellBuffer ?? true };
    this.admin = new AdminCommands(this);
    this.io = new IoCommands(this);
  }

  /** Memory page size the host chose in CC.MPS. */
  get pageSize(): number {
    return 1 << (12 + Cc.mpsOf(this.registers.cc));
  }

  /** @internal Changes at every controller reset: a command checks it before touching guest memory. */
  get generation(): number {
    return this.epoch;
  }

  /** CSTS.RDY: the controller processes commands. */
  get ready(): boolean {
    return (this.registers.csts & Csts.RDY) !== 0;
  }

  /** A PCI reset (DEVICE_RESET or FLR) resets the controller and clears its registers; a lost connection keeps them. */
  override onReset(kind: ResetKind): void {
    if (kind !== 'lost-connection') {
      this.resetRegisters();
    }
  }

  /**
   * Stops for migration: commands in flight stay in their queues' lists
   * and post nothing from here (their late results are dropped); the
   * state carries their entries, and whoever runs next runs them again.
   */
  override onStop(): void {
    this.epoch++;
    this.interruptsDue.clear();
  }

  /** Runs again, here or on the destination: commands in flight at the stop run again, queues are fetched and drained. */
  override onResume(): void {
    for (const sq of this.submissionQueues) {
      if (sq === undefined) {
        continue;
      }
      const held = sq.id === 0 ? new Set(this.admin.heldEventRequests) : new Set<number>();
      for (const [cid, entry] of sq.inFlight) {
        if (!held.has(cid)) {
          this.run(sq, decodeCommand(entry, 0));
        }
      }
      this.fetch(sq);
    }
    this.completionQueues.forEach((cq) => cq !== undefined && this.drainBacklog(cq));
  }

  private loadState(state: Buffer): void {
    this.epoch++;
    loadControllerState(this, state);
  }

  private resetRegisters(): void {
    this.controllerReset();
    Object.assign(this.registers, { cc: 0, csts: 0, intms: 0, aqa: 0, asq: 0n, acq: 0n });
  }

  private readBar0(offset: number, data: Buffer): void {
    data.fill(0);
    if (offset < REGISTER_BLOCK_SIZE) {
      const image = registerImage(CAPABILITIES, VERSION_1_4, this.registers);
      image.copy(data, 0, offset, Math.min(REGISTER_BLOCK_SIZE, offset + data.length));
    }
  }

  private writeBar0(offset: number, data: Buffer): void {
    if (offset >= NvmeRegister.DOORBELLS) {
      this.writeDoorbell(offset - NvmeRegister.DOORBELLS, data);
      return;
    }
    const { ccChanged, previousCc } = applyRegisterWrite(this.registers, offset, data, CAPABILITIES, VERSION_1_4);
    if (ccChanged) {
      this.changeConfiguration(previousCc, this.registers.cc);
    }
  }

  /** CC.EN and CC.SHN transitions. */
  private changeConfiguration(previous: number, cc: number): void {
    const wasEnabled = (previous & Cc.EN) !== 0;
    const enabled = (cc & Cc.EN) !== 0;
    if (wasEnabled && !enabled) {
      this.controllerReset();
    } else if (!wasEnabled && enabled) {
      this.enable();
    }
    if (Cc.shnOf(previous) === 0 && Cc.shnOf(cc) !== 0) {
      this.shutdown();
    }
  }

  /** CC.EN 0 → 1: checks the configuration and the admin queue registers, then sets CSTS.RDY (or CSTS.CFS). */
  private enable(): void {
    const { cc, aqa, asq, acq } = this.registers;
    const sqEntries = (aqa & 0xfff) + 1;
    const cqEntries = ((aqa >>> 16) & 0xfff) + 1;
    const problem =
      Cc.cssOf(cc) !== 0 ? 'CC.CSS is not the NVM command set'
      : Cc.mpsOf(cc) > MPS_MAX ? `CC.MPS ${Cc.mpsOf(cc)} is above CAP.MPSMAX`
      : Cc.amsOf(cc) !== 0 ? 'CC.AMS asks for an arbitration other than round robin'
      : sqEntries < 2 || cqEntries < 2 ? 'the admin queues need at least 2 entries (AQA)'
      : asq > BigInt(Number.MAX_SAFE_INTEGER) || acq > BigInt(Number.MAX_SAFE_INTEGER) ? 'ASQ or ACQ is beyond addressable memory'
      : undefined;
    if (problem !== undefined) {
      this.lastCommandError = `enable refused: ${problem}`;
      this.registers.csts |= Csts.CFS;
      return;
    }
    this.completionQueues[0] = new CompletionQueue(0, Number(acq), cqEntries, true, 0);
    this.submissionQueues[0] = new SubmissionQueue(0, Number(asq), sqEntries, 0);
    this.completionQueues[0].submissionQueues.add(0);
    this.registers.csts = Csts.RDY;
  }

  /**
   * CC.EN 1 → 0 (and every PCI reset): all queues are gone, commands in
   * flight post nothing, held Asynchronous Event Requests are dropped, the
   * features and the doorbell buffer return to their defaults. The admin
   * queue registers stay, as the specification says.
   */
  private controllerReset(): void {
    this.epoch++;
    this.submissionQueues.length = 0;
    this.completionQueues.length = 0;
    this.interruptsDue.clear();
    this.doorbellBuffer = undefined;
    this.admin.reset();
    this.registers.csts = 0;
  }

  /** CC.SHN: stops taking commands' effects to the file only once those in flight finished and the file is flushed. */
  private shutdown(): void {
    const epoch = this.epoch;
    this.registers.csts = (this.registers.csts & ~Csts.SHST_MASK) | Csts.SHST_PROCESSING;
    void this.whenDrained()
      .then(() => this.namespace.flush())
      .catch((err: Error) => {
        this.lastCommandError = `shutdown flush: ${err.message}`;
      })
      .then(() => {
        if (epoch === this.epoch && Cc.shnOf(this.registers.cc) !== 0) {
          this.registers.csts = (this.registers.csts & ~Csts.SHST_MASK) | Csts.SHST_COMPLETE;
        }
      });
  }

  /** Resolves once no command is in flight. */
  private whenDrained(): Promise<void> {
    return this.outstanding === 0 ? Promise.resolve() : new Promise((resolve) => this.drained.push(resolve));
  }

  private writeDoorbell(offset: number, data: Buffer): void {
    this.statistics.doorbellWrites++;
    if (!this.ready) {
      return; // doorbells of a disabled controller are ignored
    }
    const index = offset / DOORBELL_STRIDE;
    const queueId = Math.floor(index / 2);
    const completionSide = index % 2 === 1;
    const queue = completionSide ? this.completionQueues[queueId] : this.submissionQueues[queueId];
    if (data.length !== 4 || !Number.isInteger(index) || queue === undefined) {
      this.lastCommandError = `doorbell write of ${data.length} bytes at 0x${(offset + NvmeRegister.DOORBELLS).toString(16)}: no such doorbell`;
      this.admin.reportEvent(AsyncEvent.TYPE_ERROR, AsyncEvent.INFO_INVALID_DOORBELL_REGISTER);
      return;
    }
    const value = data.readUInt32LE(0);
    if (value >= queue.size) {
      this.lastCommandError = `doorbell of queue ${queueId} written ${value}, the queue has ${queue.size} entries`;
      this.admin.reportEvent(AsyncEvent.TYPE_ERROR, AsyncEvent.INFO_INVALID_DOORBELL_VALUE);
      return;
    }
    if (queue instanceof CompletionQueue) {
      queue.head = value;
      this.drainBacklog(queue);
    } else {
      queue.tail = value;
      this.fetch(queue);
    }
  }

  /** @internal The shadow slots of a queue, when the doorbell buffer is configured and the queue is an I/O queue. */
  shadowSlots(queueId: number, completionSide: boolean): ShadowSlots | undefined {
    const buffer = this.doorbellBuffer;
    if (buffer === undefined || queueId === 0) {
      return undefined;
    }
    const at = (2 * queueId + (completionSide ? 1 : 0)) * DOORBELL_STRIDE;
    return { doorbell: buffer.doorbells + at, eventIndex: buffer.eventIndexes + at };
  }

  /**
   * @internal Fetches and starts the queue's commands up to its tail. With a
   * shadow doorbell the tail comes from guest memory; once the queue is
   * drained the event index is set to the tail, so the host rings the MMIO
   * doorbell for its next submission, and submissions the host makes
   * before the controller gets there cost no message. (An event index left
   * behind while commands run would save more messages but leave new
   * commands waiting for a completion.)
   */
  fetch(sq: SubmissionQueue): void {
    if (sq.fetching) {
      sq.fetchAgain = true;
      return;
    }
    sq.fetching = true;
    const epoch = this.epoch;
    const run = async (): Promise<void> => {
      do {
        sq.fetchAgain = false;
        if (sq.shadow !== undefined && !(await this.readShadowTail(sq))) {
          return;
        }
        while (sq.head !== sq.tail && this.current(sq, epoch)) {
          const count = sq.tail > sq.head ? sq.tail - sq.head : sq.size - sq.head;
          const entries = await this.dma.read(sq.base + sq.head * SQ_ENTRY_SIZE, count * SQ_ENTRY_SIZE);
          if (!this.current(sq, epoch)) {
            return;
          }
          for (let i = 0; i < count; i++) {
            sq.head = (sq.head + 1) % sq.size;
            const at = i * SQ_ENTRY_SIZE;
            this.start(sq, decodeCommand(entries, at), Buffer.from(entries.subarray(at, at + SQ_ENTRY_SIZE)));
          }
        }
        if (sq.shadow !== undefined && this.current(sq, epoch)) {
          await this.dma.write(sq.shadow.eventIndex, u32(sq.tail));
          // Read before setting: a doorbell rung while the read is out also sets fetchAgain and must not be overwritten.
          const moved = await this.shadowMoved(sq);
          sq.fetchAgain ||= moved;
        }
      } while (sq.fetchAgain && this.current(sq, epoch));
    };
    void run()
      .catch((err: Error) => {
        // The queue's memory is gone: the host broke its own queue; the controller reports it and keeps serving the others.
        this.lastCommandError = `submission queue ${sq.id}: ${err.message}`;
        if (this.current(sq, epoch)) {
          this.registers.csts |= Csts.CFS;
        }
      })
      .finally(() => {
        sq.fetching = false;
        if (sq.fetchAgain) {
          // Asked for while a loop of an older generation (before a stop or reset) was ending.
          this.fetch(sq);
        }
      });
  }

  private current(sq: SubmissionQueue, epoch: number): boolean {
    return epoch === this.epoch && this.submissionQueues[sq.id] === sq;
  }

  /** Reads the shadow tail into the queue; false (and an error event) for a value past the queue. */
  private async readShadowTail(sq: SubmissionQueue): Promise<boolean> {
    const tail = (await this.dma.read(sq.shadow!.doorbell, 4)).readUInt32LE(0);
    if (tail >= sq.size) {
      this.lastCommandError = `shadow doorbell of queue ${sq.id} holds ${tail}, the queue has ${sq.size} entries`;
      this.admin.reportEvent(AsyncEvent.TYPE_ERROR, AsyncEvent.INFO_INVALID_DOORBELL_VALUE);
      return false;
    }
    sq.tail = tail;
    return true;
  }

  private async shadowMoved(sq: SubmissionQueue): Promise<boolean> {
    return (await this.dma.read(sq.shadow!.doorbell, 4)).readUInt32LE(0) !== sq.tail;
  }

  /** Takes a fetched command: refuses a command ID already in flight, else runs it. */
  private start(sq: SubmissionQueue, command: Command, entry: Buffer): void {
    this.statistics.commands++;
    if (sq.inFlight.has(command.cid)) {
      this.post(sq, command.cid, { result: 0, status: Status.COMMAND_ID_CONFLICT | Status.DNR });
      return;
    }
    sq.inFlight.set(command.cid, entry);
    this.run(sq, command);
  }

  /** @internal Runs a command in flight; its completion is posted when it finishes, unless it is held or a reset or stop came first. */
  run(sq: SubmissionQueue, command: Command): void {
    this.outstanding++;
    const epoch = this.epoch;
    const kind = sq.id === 0 ? 'admin' : 'I/O';
    const handled = sq.id === 0 ? this.admin.execute(command) : this.io.execute(command);
    void Promise.resolve(handled)
      .catch((err: unknown): Completion => {
        this.lastCommandError = `${kind} opcode 0x${command.opcode.toString(16)}: ${(err as Error).message}`;
        return { result: 0, status: err instanceof CommandError ? err.status : Status.INTERNAL_ERROR };
      })
      .then((completion) => {
        if (completion !== HELD) {
          this.finish(sq, command.cid, completion, epoch);
        }
        this.settle();
      });
  }

  /** @internal Completes a command that was started (including a held one), unless the controller was reset since. */
  finish(sq: SubmissionQueue, cid: number, completion: Completion, epoch = this.epoch): void {
    if (!this.current(sq, epoch) || !sq.inFlight.delete(cid)) {
      return;
    }
    this.post(sq, cid, completion);
  }

  private settle(): void {
    this.outstanding--;
    if (this.outstanding === 0) {
      const waiting = this.drained;
      this.drained = [];
      waiting.forEach((resolve) => resolve());
    }
  }

  /** Writes a completion entry into the queue's CQ (or queues it until there is room), then signals the CQ's interrupt. */
  private post(sq: SubmissionQueue, cid: number, completion: Completion): void {
    const cq = this.completionQueues[sq.cqId];
    if (cq === undefined) {
      return;
    }
    this.statistics.completions++;
    const pending = { sqId: sq.id, cid, result: completion.result, status: completion.status };
    if (cq.full || cq.backlog.length > 0) {
      cq.backlog.push(pending);
      this.refreshShadowHead(cq);
    } else {
      this.writeCompletion(cq, pending);
    }
  }

  private writeCompletion(cq: CompletionQueue, pending: PendingCompletion): void {
    const { slot, phase } = cq.claim();
    const entry = Buffer.alloc(CQ_ENTRY_SIZE);
    entry.writeUInt32LE(pending.result >>> 0, 0);
    entry.writeUInt16LE(this.submissionQueues[pending.sqId]?.head ?? 0, 8);
    entry.writeUInt16LE(pending.sqId, 10);
    entry.writeUInt16LE(pending.cid, 12);
    entry.writeUInt16LE(((pending.status << 1) | phase) & 0xffff, 14);
    const epoch = this.epoch;
    void this.dma.write(cq.base + slot * CQ_ENTRY_SIZE, entry).then(
      () => this.interruptSoon(cq, epoch),
      (err: Error) => {
        this.lastCommandError = `completion queue ${cq.id}: ${err.message}`;
      },
    );
  }

  /** @internal Posts what waited for room in a completion queue. */
  drainBacklog(cq: CompletionQueue): void {
    while (cq.backlog.length > 0 && !cq.full) {
      this.writeCompletion(cq, cq.backlog.shift()!);
    }
  }

  /** A full CQ with a shadow head: the host may have consumed entries without ringing; the event index asks it to ring next time. */
  private refreshShadowHead(cq: CompletionQueue): void {
    const shadow = cq.shadow;
    if (shadow === undefined) {
      return;
    }
    const epoch = this.epoch;
    void (async () => {
      await this.dma.write(shadow.eventIndex, u32(cq.head));
      const head = (await this.dma.read(shadow.doorbell, 4)).readUInt32LE(0);
      if (epoch === this.epoch && this.completionQueues[cq.id] === cq && head < cq.size) {
        cq.head = head;
        this.drainBacklog(cq);
      }
    })().catch((err: Error) => {
      this.lastCommandError = `shadow head of completion queue ${cq.id}: ${err.message}`;
    });
  }

  /** Interrupts of completions posted in the same turn go out as one. */
  private interruptSoon(cq: CompletionQueue, epoch: number): void {
    if (!cq.interruptsEnabled || epoch !== this.epoch) {
      return;
    }
    if (this.interruptsDue.size === 0) {
      queueMicrotask(() => {
        for (const due of this.interruptsDue) {
          this.interrupt(due);
        }
        this.interruptsDue.clear();
      });
    }
    this.interruptsDue.add(cq);
  }

  private interrupt(cq: CompletionQueue): void {
    this.statistics.interrupts++;
    if (this.msix(cq.vector)) {
      return;
    }
    // INTx: one line for every queue, masked by INTMS bit 0.
    if ((this.registers.intms & 1) === 0) {
      this.intx();
    }
  }
}

function u32(value: number): Buffer {
  const data = Buffer.alloc(4);
  data.writeUInt32LE(value >>> 0);
  return data;
}
