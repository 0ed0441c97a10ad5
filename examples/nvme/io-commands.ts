/**
 * The NVM command set on namespace 1: Read, Write, Flush, Write Zeroes and
 * Dataset Management (deallocate, which zeroes: deallocated blocks read as
 * zeros, as Identify Namespace DLFEAT says).
 */
import type { Command, Completion } from './command';
import { CommandError } from './command-error';
import { IoOpcode, Status } from './constants';
import type { NvmeController } from './controller';
import { maxTransfer } from './admin-commands';
import { BLOCK_SIZE } from './namespace';
import { readSegments, walkPrps, writeSegments } from './prp';

const DONE: Completion = { result: 0, status: Status.SUCCESS };
const ALL_NAMESPACES = 0xffffffff;
const DSM_RANGE_SIZE = 16;
/** Dataset Management attribute: deallocate. */
const DSM_DEALLOCATE = 1 << 2;

function fail(status: number, why: string): never {
  throw new CommandError(status, why);
}

/** Buffers kept per size class: a few commands in flight each. */
const KEPT_PER_SIZE = 8;

/**
 * Transfer buffers, reused: a fresh 1 MiB Buffer per command costs more CPU
 * than its data (the kernel's page faults and zeroing, then the garbage
 * collector). A buffer goes back only after a command used it without
 * error: after a failure a DMA message may still be reading it.
 */
class TransferBuffers {
  readonly #free = new Map<number, Buffer[]>();

  async use<T>(size: number, work: (data: Buffer) => Promise<T>): Promise<T> {
    const capacity = Math.max(4096, 2 ** Math.ceil(Math.log2(size)));
    const kept = this.#free.get(capacity) ?? [];
    this.#free.set(capacity, kept);
    const whole = kept.pop() ?? Buffer.allocUnsafe(capacity);
    const result = await work(whole.subarray(0, size));
    if (kept.length < KEPT_PER_SIZE) {
      kept.push(whole);
    }
    return result;
  }
}

/** The I/O queues' commands. */
export class IoCommands {
  /** Blocks read and written for the host, for the SMART log. */
  blocksRead = 0n;
  blocksWritten = 0n;
  readonly #buffers = new TransferBuffers();

  constructor(private readonly controller: NvmeController) {}

  /** Runs one I/O command. */
  async execute(command: Command): Promise<Completion> {
    if (command.fuse !== 0 || command.psdt !== 0) {
      fail(Status.INVALID_FIELD | Status.DNR, 'fused operations and SGLs are not supported');
    }
    const flushAll = command.opcode === IoOpcode.FLUSH && command.nsid === ALL_NAMESPACES;
    if (command.nsid !== 1 && !flushAll) {
      fail(Status.INVALID_NAMESPACE | Status.DNR, `namespace ${command.nsid} does not exist`);
    }
    switch (command.opcode) {
      case IoOpcode.READ: return this.read(command);
      case IoOpcode.WRITE: return this.write(command);
      case IoOpcode.FLUSH: return this.flush();
      case IoOpcode.WRITE_ZEROES: return this.writeZeroes(command);
      case IoOpcode.DATASET_MANAGEMENT: return this.datasetManagement(command);
      default: return fail(Status.INVALID_OPCODE | Status.DNR, 'unknown I/O opcode');
    }
  }

  /** Starting LBA (CDW10-11) and block count (CDW12 bits 15:0, 0-based), checked against the namespace. */
  private range(command: Command): { lba: number; blocks: number } {
    const lba = command.cdw10 + command.cdw11 * 2 ** 32;
    const blocks = (command.cdw12 & 0xffff) + 1;
    this.checkRange(lba, blocks);
    return { lba, blocks };
  }

  private checkRange(lba: number, blocks: number): void {
    if (lba + blocks > this.controller.namespace.blocks) {
      fail(Status.LBA_OUT_OF_RANGE | Status.DNR, `blocks ${lba} to ${lba + blocks - 1} are past the namespace's ${this.controller.namespace.blocks}`);
    }
  }

  private async segmentsOf(command: Command, bytes: number): Promise<Awaited<ReturnType<typeof walkPrps>>> {
    if (bytes > maxTransfer()) {
      fail(Status.INVALID_FIELD | Status.DNR, `${bytes} bytes exceed the maximum data transfer size`);
    }
    return walkPrps(this.controller.dma, command.prp1, command.prp2, bytes, this.controller.pageSize);
  }

  private async read(command: Command): Promise<Completion> {
    const { lba, blocks } = this.range(command);
    const segments = await this.segmentsOf(command, blocks * BLOCK_SIZE);
    const generation = this.controller.generation;
    return this.#buffers.use(blocks * BLOCK_SIZE, async (data) => {
      try {
        await this.controller.namespace.read(lba, data);
      } catch (err) {
        fail(Status.UNRECOVERED_READ_ERROR, (err as Error).message);
      }
      if (generation !== this.controller.generation) {
        return DONE; // reset meanwhile: guest memory is no longer the command's, and nothing is posted
      }
      await writeSegments(this.controller.dma, segments, data);
      this.blocksRead += BigInt(blocks);
      return DONE;
    });
  }

  private async write(command: Command): Promise<Completion> {
    const { lba, blocks } = this.range(command);
    const segments = await this.segmentsOf(command, blocks * BLOCK_SIZE);
    return this.#buffers.use(blocks * BLOCK_SIZE, async (data) => {
      await readSegments(this.controller.dma, segments, data);
      try {
        await this.controller.namespace.write(lba, data);
      } catch (err) {
        fail(Status.WRITE_FAULT, (err as Error).message);
      }
      this.blocksWritten += BigInt(blocks);
      return DONE;
    });
  }

  private async flush(): Promise<Completion> {
    try {
      await this.controller.namespace.flush();
    } catch (err) {
      fail(Status.WRITE_FAULT, (err as Error).message);
    }
    return DONE;
  }

  private async writeZeroes(command: Command): Promise<Completion> {
    const { lba, blocks } = this.range(command);
    try {
      await this.controller.namespace.zero(lba, blocks);
    } catch (err) {
      fail(Status.WRITE_FAULT, (err as Error).message);
    }
    return DONE;
  }

  /** Reads the range list (CDW10 bits 7:0: ranges, 0-based), checks every range, then deallocates them. */
  private async datasetManagement(command: Command): Promise<Completion> {
    if ((command.cdw11 & DSM_DEALLOCATE) === 0) {
      return DONE; // only access hints: nothing to do
    }
    const count = (command.cdw10 & 0xff) + 1;
    const list = Buffer.alloc(count * DSM_RANGE_SIZE);
    await readSegments(this.controller.dma, await this.segmentsOf(command, list.length), list);
    const ranges = Array.from({ length: count }, (_, i) => ({
      blocks: list.readUInt32LE(i * DSM_RANGE_SIZE + 4),
      lba: Number(list.readBigUInt64LE(i * DSM_RANGE_SIZE + 8)),
    }));
    ranges.forEach(({ lba, blocks }) => this.checkRange(lba, blocks));
    try {
      for (const { lba, blocks } of ranges) {
        await this.controller.namespace.zero(lba, blocks);
      }
    } catch (err) {
      fail(Status.WRITE_FAULT, (err as Error).message);
    }
    return DONE;
  }
}
